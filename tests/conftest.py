"""Shared test settings: a non-interactive matplotlib backend and a fixed thread count."""

import sys
import threading
import time

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


@pytest.fixture(autouse=True)
def _panels_done_after_each_test():
    """A panel's redraw thread draws frames ahead after its test, with torch on one thread
    (fmlib.panel.one_draw_thread): the next test starts once every such thread has ended, so
    it sees the thread count it set (and no frame competes with it for the cores)."""
    yield
    panel = sys.modules.get("fmlib.panel")
    if panel is None:  # no panel in this process
        return
    deadline = time.monotonic() + 120  # a hang detector: drawing ahead takes seconds
    while any(t.name == panel.WORKER_NAME for t in threading.enumerate()):
        if time.monotonic() > deadline:
            raise TimeoutError("a panel's redraw thread still runs 120 s after its test")
        time.sleep(0.01)
