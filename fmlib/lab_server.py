"""A Jupyter server extension: the kernel's messages reach the browser without Nagle's delay.

jupyter_server (2.x) leaves Nagle's algorithm on for the kernel's websocket: a small message
(a status, a widget's reply) written while the previous one is not yet acknowledged waits
for the browser's delayed ACK, up to 40 ms on Linux. A panel can pay it twice per slider
value: ipywidgets sends the next value only after the kernel's reply to the last one, and the
new picture comes the same way. Measured on 2 cores (benchmarks/RESULTS.md): a kernel's reply,
made in the kernel -> read by a websocket client, 40.2 ms median (44.3 at worst) before,
1.2 ms (2.1) after.

`make install` enables it for the course's environment: it writes
.venv/etc/jupyter/jupyter_server_config.d/fmlib.lab_server.json (`jupyter server extension
enable` only toggles an extension already listed there), so `make lab`, `make lecture` and the
browser tests use it; `jupyter server extension list` shows it (tests/test_lab_server.py).
"""

from __future__ import annotations

from collections.abc import Callable

MARK = "_fmlib_no_delay"  # set on the wrapped `open`: wrapping twice does nothing


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "fmlib.lab_server"}]


def no_delay(handler_class: type) -> None:
    """Make each websocket `handler_class` opens set TCP_NODELAY before it starts talking."""
    opened: Callable = handler_class.open
    if getattr(opened, MARK, False):
        return

    def open(self, *args, **kwargs):  # tornado awaits what the original returns, if anything
        self.set_nodelay(True)
        return opened(self, *args, **kwargs)

    setattr(open, MARK, True)
    open.__doc__ = opened.__doc__
    handler_class.open = open


def _load_jupyter_server_extension(server_app) -> None:
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    no_delay(KernelWebsocketHandler)
    server_app.log.info("fmlib.lab_server: kernel websockets send without Nagle's delay")
