"""fmlib.lab_server: kernel websockets set TCP_NODELAY (Nagle's algorithm held a reply up to
40 ms), and `make install` enables the extension in the course's environment."""

import subprocess
import sys

from fmlib import lab_server


class Handler:
    """A websocket handler's two calls, recorded."""

    def __init__(self):
        self.calls = []

    def set_nodelay(self, value: bool) -> None:
        self.calls.append(("set_nodelay", value))

    async def open(self, kernel_id: str):
        """Open a kernel websocket."""
        self.calls.append(("open", kernel_id))
        return "opened"


def test_open_sets_nodelay_first_and_keeps_the_original():
    class Wrapped(Handler):
        pass

    lab_server.no_delay(Wrapped)
    lab_server.no_delay(Wrapped)  # a second load wraps nothing more
    handler = Wrapped()
    coroutine = handler.open("k1")
    assert handler.calls == [("set_nodelay", True)]  # before the original runs
    try:
        coroutine.send(None)
    except StopIteration as done:
        assert done.value == "opened"
    assert handler.calls == [("set_nodelay", True), ("open", "k1")]
    assert Wrapped.open.__doc__ == "Open a kernel websocket."
    assert Handler.open is not Wrapped.open and Handler().calls == []


def test_the_extension_wraps_jupyter_servers_kernel_websocket():
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    class Log:
        def info(self, message: str) -> None:
            self.message = message

    app = type("App", (), {"log": Log()})()
    lab_server._load_jupyter_server_extension(app)
    assert getattr(KernelWebsocketHandler.open, lab_server.MARK)
    assert "Nagle" in app.log.message
    points = lab_server._jupyter_server_extension_points()
    assert points == [{"module": "fmlib.lab_server"}]


def test_make_install_enables_it():
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = listing.stdout + listing.stderr
    line = next((s for s in text.splitlines() if "fmlib.lab_server" in s), "")
    assert "enabled" in line, f"fmlib.lab_server is not enabled (`make install`):\n{text}"
