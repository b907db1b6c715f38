"""Shared test settings: a non-interactive matplotlib backend and a fixed thread count."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(2)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def course_style():
    """The notebooks' matplotlib style (plots.use_style), for this test only."""
    from fmlib import plots

    with matplotlib.rc_context():
        plots.use_style()
        yield


@pytest.fixture
def float64():
    """Closed forms are compared in float64; the global default is restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
