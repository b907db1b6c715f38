"""Pure draw functions behind the notebook widgets, one module per notebook topic."""
