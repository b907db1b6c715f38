"""The live panel: a view's picture under its controls, redrawn while the hand moves them.

Where the panel code lives:
    fmlib.plots.LiveFigure  a view: its figure built once, `update(**values)` changes the data,
                            `raster()` / `encode()` blit and encode; `View.draw(**values)` is
                            the same picture as a new pyplot Figure (static pages)
    fmlib.figures           the views, and REGISTRY: one entry per panel (its notebook, the
                            benchmark's values, the site's frames)
    fmlib.widgets           the controls (sliders, dropdowns, readouts) and `panel(view)`
    fmlib.panel             Panel (the box a notebook shows), Redrawer (one worker thread, the
                            latest value wins), FrameCache (the last pictures), draw-ahead

Live: redraws run on one worker thread that always draws the latest values and drops those
that arrived while it was busy, so redraws never queue up behind the hand. A frame whose
values the hand has already left gives way, between its stages, to the newer values while
their picture can still reach the screen within 1/MIN_FPS s of the screen going out of date
(a quick flick of a slider shows its final value sooner; a long drag still shows >= MIN_FPS
pictures a second when a frame takes less than 1/MIN_FPS s). Once the hand has
rested for AHEAD_AFTER_S the worker draws, into the cache, the frames it may ask for next
(along t for Play, then along the control moved last); a frame drawn ahead gives way to a
value the hand asks for after its maths and between the artists it rasters, so a request
waits for at most the maths or one artist of it. A Play button runs t through its grid in
the browser (jslink).
"""

from __future__ import annotations

import html
import io
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from fmlib import figure_check
from fmlib.plots import LiveFigure

PLAY_INTERVAL_MS = 80  # 12.5 frames per second when Play runs t
FRAME_CACHE = 96  # pictures a panel keeps (PNGs of 40-130 kB: at most about 12 MB)
AHEAD_AFTER_S = 0.3  # the hand has rested this long: draw the frames it may ask for next
AHEAD_VALUES = 24  # values drawn ahead per slider (t: its whole grid when it has <= 24)
MIN_FPS = 8.0  # while the hand moves, an outdated frame is finished when skipping it would
# leave the screen out of date for longer than 1 / MIN_FPS s
WORKER_NAME = "fmlib-panel-redraw"  # the redraw threads' name (tests wait for them to end)
TRACE_ENV = "FMLIB_PANEL_TRACE"  # a file: timing events as JSON lines (tests/ui/stages.py)


def _trace(event: dict) -> None:
    """Append one timing event to the file named by $FMLIB_PANEL_TRACE, when it is set."""
    path = os.environ.get(TRACE_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(event, default=str) + "\n")


_THREADS = threading.Lock()
_drawing = 0  # frames being drawn now, over all panels
_threads_before = 1  # torch's thread count when the first of them started


@contextmanager
def one_draw_thread() -> Iterator[None]:
    """torch's element-wise and matrix maths on one thread while any panel draws a frame.

    A frame's tensors are small (at most a few 10^4 entries), yet with 2 threads some
    element-wise ops on a few hundred entries (exp, measured) cost milliseconds: a second
    thread spins and, on a 2-core machine that is busy (the browser, the server, another
    kernel), waits to be scheduled.
    Measured (benchmarks/widgets.py, CPU seconds, AMD EPYC 2 cores, loaded): a
    ConditionalPath redraw at steps = 100 took 1.1 s on 2 threads, 0.07 s on one; the other
    views' medians fell too. Unlike fmlib.repro.one_thread this is safe across panels (each
    panel draws on its own thread): the count is restored when the last frame ends, unless a
    cell changed it meanwhile. A cell that runs while a frame is drawn shares the one thread."""
    global _drawing, _threads_before
    with _THREADS:
        if _drawing == 0:
            _threads_before = torch.get_num_threads()
            if _threads_before > 1:
                torch.set_num_threads(1)
        _drawing += 1
    try:
        yield
    finally:
        with _THREADS:
            _drawing -= 1
            if _drawing == 0 and _threads_before > 1 and torch.get_num_threads() == 1:
                torch.set_num_threads(_threads_before)


def _parent_msg_id() -> str | None:
    """The id of the kernel message being handled (the browser's slider message), if any."""
    try:
        from ipykernel.kernelbase import Kernel

        if Kernel.initialized():
            return Kernel.instance().get_parent("shell").get("header", {}).get("msg_id")
    except Exception:  # outside a kernel, or another kernel version: the trace goes without
        return None
    return None


def _check_readable(view: LiveFigure) -> None:
    """Under $FMLIB_CHECK_FIGURES, a view's first frame is checked for readability (once: the
    layout is built once)."""
    if figure_check.enabled() and not getattr(view, "_readable_checked", False):
        figure_check.check(view.fig, where=f"{type(view).__name__}'s frame")
        view._readable_checked = True
        view.invalidate()


def render_png(draw: Callable[..., Figure] | LiveFigure, values: dict) -> bytes:
    """PNG of draw(**values): a LiveFigure blits; a plain function builds a new Figure."""
    if isinstance(draw, LiveFigure):
        png = render_stages(draw, values)[0]
        assert png is not None  # nothing asked it to stop
        return png
    with one_draw_thread():
        fig = draw(**values)
    if figure_check.enabled():
        figure_check.check(fig, where=f"{getattr(draw, '__name__', 'panel')}'s frame")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_stages(
    view: LiveFigure, values: dict, stop: Callable[[], bool] | None = None
) -> tuple[bytes | None, dict[str, float]]:
    """(PNG, {stage: seconds}) of view at values, stage by stage: maths (`update`), raster,
    PNG. With `stop`, asked between stages and between the artists of the raster: True
    abandons the frame (PNG None)."""
    seconds: dict[str, float] = {}
    with view.lock, one_draw_thread():
        start = time.perf_counter()
        view.update(**values)
        _check_readable(view)
        seconds["maths"] = (mark := time.perf_counter()) - start
        if stop is not None and stop():
            return None, seconds
        rgb = view.raster(stop)
        seconds["raster"] = (start := time.perf_counter()) - mark
        if rgb is None or (stop is not None and stop()):
            return None, seconds
        png = view.encode(rgb)
        seconds["png"] = time.perf_counter() - start
    return png, seconds


def _clock() -> float:
    """The clock of the give-way rule (a test freezes it to make the rule's choice certain)."""
    return time.monotonic()


class Redrawer:
    """Draw the latest requested values on one worker thread, dropping stale requests.

    `request(values)` returns at once, so the kernel drains every queued slider message while a
    redraw runs; when the redraw ends, only the newest values are drawn next.
    `render(values, give_way)` draws and shows a frame and returns True, or returns False
    when `give_way()`, asked between its stages, said to abandon it for newer values (see
    `give_way`). Once no request has come for AHEAD_AFTER_S, `ahead()` draws one frame the
    hand may ask for next (into a cache, not on screen) and is called again until it returns
    False; it may ask `pending()` between its stages and give way to a request."""

    def __init__(
        self,
        render: Callable[[dict, Callable[[], bool]], bool],
        on_error: Callable[[Exception], None],
        ahead: Callable[[], bool] | None = None,
    ):
        self._render, self._on_error, self._ahead = render, on_error, ahead
        self._cond = threading.Condition()
        self._pending: dict | None = None
        self._requested_at = 0.0
        self._pending_since = 0.0  # _clock() when the values waiting now were first asked for
        self._stale_since: float | None = None  # _clock() when the screen went out of date
        self._frame_s = 0.0  # how long the last frame shown took to draw (_clock seconds)
        self._running = False
        self._drawing = False  # a requested frame is being drawn (not one drawn ahead)
        self.drawn = 0  # how many requested redraws ran (tests check stale values are dropped)
        self.abandoned = 0  # requested frames that gave way to newer values

    def request(self, values: dict) -> None:
        with self._cond:
            if self._pending is None:
                self._pending_since = _clock()
            if self._stale_since is None:
                self._stale_since = self._pending_since
            self._pending = dict(values)
            self._requested_at = time.monotonic()
            self._cond.notify()
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, daemon=True, name=WORKER_NAME).start()

    def pending(self) -> bool:
        """A request is waiting (a frame drawn ahead should give way)."""
        with self._cond:
            return self._pending is not None

    def give_way(self) -> bool:
        """Newer values are waiting and the frame being drawn should make room for them: their
        picture, drawn now, would still reach the screen within 1/MIN_FPS s of the screen
        going out of date (judged by how long the last frame shown took)."""
        with self._cond:
            if self._pending is None or self._stale_since is None:
                return False
            return _clock() - self._stale_since + self._frame_s < 1 / MIN_FPS

    def _take(self) -> dict | None:
        """The newest requested values, or None once the hand has rested for AHEAD_AFTER_S."""
        with self._cond:
            if self._pending is None and self._ahead is not None:
                rest = self._requested_at + AHEAD_AFTER_S - time.monotonic()
                if rest > 0:
                    self._cond.wait(rest)
            values, self._pending = self._pending, None
            self._drawing = values is not None
            return values

    def _loop(self) -> None:
        while True:
            values = self._take()
            if values is not None:
                start, shown = _clock(), True
                try:
                    shown = self._render(values, self.give_way)
                except Exception as exc:  # shown on the panel: a thread has no cell to fail in
                    self._on_error(exc)
                self._finished(shown, _clock() - start)
                continue
            if self._ahead is not None and self._ahead():
                continue
            with self._cond:
                if self._pending is None:
                    self._running = self._drawing = False
                    return

    def _finished(self, shown: bool, seconds: float) -> None:
        """Book a requested frame: shown (the screen is up to date with the request, or stale
        since the one waiting) or abandoned."""
        with self._cond:
            self.drawn += 1
            if not shown:
                self.abandoned += 1
                return
            self._frame_s = seconds
            self._stale_since = None if self._pending is None else self._pending_since

    def idle(self) -> bool:
        """No requested frame waiting or being drawn (frames may still be drawn ahead)."""
        with self._cond:
            return self._pending is None and not self._drawing

    def done(self) -> bool:
        """The worker thread has stopped: nothing requested, nothing left to draw ahead."""
        with self._cond:
            return not self._running


class FrameCache:
    """The last `size` pictures a panel drew, by control values (least recently used first out).

    A view draws the same picture for the same values, so a picture from the cache is the one a
    fresh draw would give (tests/ui checks the bytes)."""

    def __init__(self, size: int = FRAME_CACHE):
        self.size = size
        self._frames: OrderedDict[tuple, tuple[bytes, dict]] = OrderedDict()

    @staticmethod
    def key(values: dict) -> tuple:  # a slider's 0.27 and a grid's 0.27000000000000002 agree
        return tuple(
            (k, round(v, 10) if isinstance(v, float) else v) for k, v in sorted(values.items())
        )

    def get(self, values: dict) -> tuple[bytes, dict] | None:
        key = self.key(values)
        if key in self._frames:
            self._frames.move_to_end(key)
        return self._frames.get(key)

    def put(self, values: dict, frame: tuple[bytes, dict]) -> None:
        self._frames[self.key(values)] = frame
        self._frames.move_to_end(self.key(values))
        while len(self._frames) > self.size:
            self._frames.popitem(last=False)

    def __contains__(self, values: dict) -> bool:
        return self.key(values) in self._frames


def nearby(control: widgets.ValueWidget, value, n: int = AHEAD_VALUES) -> list:
    """Up to n values a slider offers nearest `value` (nearest first, the next one up before
    the next one down): what a drag or Play asks for next. Dropdowns: none."""
    if isinstance(control, widgets.SelectionSlider):
        values = [v[1] if isinstance(v, tuple) else v for v in control.options]
        here = values.index(value) if value in values else 0
    elif isinstance(control, widgets.IntSlider | widgets.FloatSlider):
        count = int(round((control.max - control.min) / control.step)) + 1
        here = int(round((value - control.min) / control.step))
        values = [round(control.min + k * control.step, 10) for k in range(count)]
        if isinstance(control, widgets.IntSlider):
            values = [int(v) for v in values]
    else:
        return []
    order = sorted(range(len(values)), key=lambda k: (abs(k - here), k < here))
    return [values[k] for k in order if k != here][:n]


def _link_play(t: widgets.SelectionSlider) -> widgets.Play:
    """A Play button that steps the t slider through its grid in the browser."""
    play = widgets.Play(
        value=t.index,
        min=0,
        max=len(t.options) - 1,
        step=1,
        interval=PLAY_INTERVAL_MS,
        description="play t",
        layout=widgets.Layout(width="auto"),
    )
    widgets.jslink((play, "value"), (t, "index"))
    return play


class Panel(widgets.VBox):
    """Controls on top, the figure `draw(**values)` below, redrawn live when a control moves.

    `draw` is a LiveFigure view (controls default to `draw.controls()`, the note to its NOTE;
    controls it reports in `inactive(**values)` are disabled with their reason) or any
    function returning a new Figure (then `controls` must be given). The panel is the box
    the notebook shows; tests drive it with `set(**values)` (as the hand would), `wait()`,
    and read `picture`, `shown` and `redraws`.
    """

    def __init__(
        self, draw: Callable[..., Figure] | LiveFigure, note: str | None = None, **controls
    ):
        if not callable(draw):
            raise ValueError(f"draw must be callable, got {type(draw).__name__}")
        self.view = draw
        self._is_view = isinstance(draw, LiveFigure)
        if not controls and self._is_view:
            controls = draw.controls()
            note = note if note is not None else draw.NOTE
        if not controls:
            raise ValueError("controls must name at least one widget, e.g. sigma_min=...")
        for name, control in controls.items():
            if not isinstance(control, widgets.ValueWidget):
                raise ValueError(f"control {name!r} must be an ipywidgets value widget")
        self.controls = controls
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.status = widgets.HTML()
        self.cache = FrameCache()
        self.shown: dict = {}  # the values of the picture on screen
        self._moved: str | None = None  # the control the hand moved last
        self._broken: set[tuple] = set()  # frames that failed when drawn ahead: not tried again
        self._show(self.values())  # the first picture now, in the cell (an error fails it)
        self._redrawer = Redrawer(self._show, self._failed, self._draw_ahead)
        for name, control in controls.items():
            control.observe(partial(self._changed, name), names="value")
        row = list(controls.values())
        t = controls.get("t")
        if isinstance(t, widgets.SelectionSlider):
            row.insert(0, _link_play(t))
        parts = [widgets.HBox(row, layout=widgets.Layout(flex_flow="row wrap"))]
        if note:
            parts.append(widgets.HTML(f"<div><i>{html.escape(note)}</i></div>"))
        super().__init__([*parts, self.status, self.image])

    # --- the public redraw API -------------------------------------------------------------
    def values(self) -> dict:
        """The controls' current values."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values) -> None:
        """Move controls to these values, as the hand would (each change asks for a redraw)."""
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"name must be one of {', '.join(self.controls)}, got {name!r}")
            self.controls[name].value = value

    @property
    def picture(self) -> bytes:
        """The PNG on screen."""
        return bytes(self.image.value)

    @property
    def abandoned(self) -> int:
        """How many requested frames gave way to newer values before they were shown."""
        return self._redrawer.abandoned

    @property
    def redraws(self) -> int:
        """How many requested redraws ran (stale values dropped while one ran are not drawn)."""
        return self._redrawer.drawn

    def idle(self) -> bool:
        """No requested frame waiting or being drawn (frames may still be drawn ahead)."""
        return self._redrawer.idle()

    def done(self) -> bool:
        """Nothing requested and nothing left to draw ahead: the worker thread has stopped."""
        return self._redrawer.done()

    def wait(self, ahead: bool = False, timeout: float = 60.0) -> None:
        """Until the picture on screen is the last value's (ahead=True: and the frames drawn
        ahead are drawn). `timeout` is a hang detector: TimeoutError when it passes."""
        ready = self.done if ahead else self.idle
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the panel's redraw thread did not finish in {timeout} s")
            time.sleep(0.005)

    # --- drawing ---------------------------------------------------------------------------
    def _frame(self, values: dict, stop: Callable[[], bool] | None = None) -> tuple | None:
        """(PNG, reasons, seconds per stage) of values, from the cache or drawn (None when
        `stop` said to give way)."""
        hit = self.cache.get(values)
        if hit is not None:
            return (*hit, {})
        if self._is_view:
            reasons = self.view.inactive(**values)
            png, seconds = render_stages(self.view, values, stop)
            if png is None:
                return None
        else:
            reasons, seconds = {}, {}
            png = render_png(self.view, values)
        self.cache.put(values, (png, reasons))
        return png, reasons, seconds

    def _show(self, values: dict, give_way: Callable[[], bool] | None = None) -> bool:
        """Draw (or take from the cache) and show the frame of values; False when `give_way`
        said to abandon it between its stages."""
        start = time.time()
        frame = self._frame(values, stop=give_way)
        if frame is None:
            _trace(
                {"ev": "abandoned", "key": FrameCache.key(values), "t0": start, "t1": time.time()}
            )
            return False
        png, reasons, seconds = frame
        drawn = time.time()
        self.image.value = png
        self.shown = dict(values)
        for name, control in self.controls.items():
            control.disabled = name in reasons
        self.status.value = "".join(
            f"<div><i>{html.escape(self.controls[n].description or n)}: {html.escape(r)}</i></div>"
            for n, r in reasons.items()
            if n in self.controls
        )
        _trace(
            {
                "ev": "shown",
                "key": FrameCache.key(values),
                "t0": start,
                "t1": drawn,
                "t2": time.time(),
                "n": len(png),
                **seconds,
            }
        )
        return True

    def _draw_ahead(self) -> bool:
        """Draw one not-yet-drawn frame next to the one on screen, along t (Play) first, then
        along the control moved last; False when there is none. It gives way between stages
        to a value the hand asks for."""
        hit = self.cache.get(self.shown)
        reasons = hit[1] if hit is not None else {}
        names = [n for n in dict.fromkeys(["t", self._moved]) if n in self.controls]
        for name in names:
            if name in reasons:
                continue
            for value in nearby(self.controls[name], self.shown[name]):
                candidate = {**self.shown, name: value}
                if candidate in self.cache or FrameCache.key(candidate) in self._broken:
                    continue
                start = time.time()
                try:
                    self._frame(candidate, stop=self._redrawer.pending)
                except Exception:  # drawn again, and reported, if the hand gets there
                    self._broken.add(FrameCache.key(candidate))
                _trace(
                    {
                        "ev": "ahead",
                        "key": FrameCache.key(candidate),
                        "t0": start,
                        "t1": time.time(),
                    }
                )
                return True
        return False

    def _failed(self, exc: Exception) -> None:
        self.status.value = f"<div style='color:#b00'>redraw failed: {html.escape(repr(exc))}</div>"

    def _changed(self, name: str, _change: dict) -> None:
        if os.environ.get(TRACE_ENV):
            _trace(
                {
                    "ev": "asked",
                    "t": time.time(),
                    "msg": _parent_msg_id(),
                    "key": FrameCache.key(self.values()),
                }
            )
        self._moved = name
        self._redrawer.request(self.values())
