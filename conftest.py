"""Settings for every pytest run from the repository root (unit tests and nbval notebooks)."""

import pytest

# nbval waits a hard-coded 5 s for each IOPub message after a cell's reply; on a busy CI
# machine (two xdist workers, each training or integrating) that is not always enough.
NBVAL_OUTPUT_TIMEOUT_S = 60


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval.plugin.IPyNbCell
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT_S
