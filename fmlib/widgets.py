"""The course's controls and `panel`: the one widget pattern.

Pattern: precompute what the controls do not change; a `LiveFigure` view in fmlib/figures whose
`controls()` returns the controls below and whose `update(**values)` redraws; in the notebook,
`widgets.panel(view)`. The same view drawn once with fixed values is the static page.

Honest controls: a slider offers only values its view draws (`options=`: a selection slider
over precomputed values) and its readout is the drawn value; a control with no effect at the
current values is disabled with its reason (`view.inactive`); a control with no meaning in a
notebook is absent, and the view's NOTE says why.

Live: every control updates while it is dragged. Redraws run on one worker thread that always
draws the latest values and drops the ones that arrived while it was busy, so redraws never
queue up behind the hand; a Play button runs t from 0 to 1 in the browser (jslink).
"""

from __future__ import annotations

import html
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from fmlib import figure_check
from fmlib.plots import LiveFigure

SOLVERS = ("euler", "midpoint", "rk4")
T_GRID = tuple(round(k / 20, 2) for k in range(21))  # t = 0, 0.05, ..., 1
PLAY_INTERVAL_MS = 80  # 12.5 frames per second when Play runs t
FRAME_CACHE = 96  # pictures a panel keeps (PNGs of 40-130 kB: at most about 12 MB)
AHEAD_AFTER_S = 0.3  # the hand has rested this long: draw the frames it may ask for next
AHEAD_VALUES = 24  # values drawn ahead per slider (t: its whole grid when it has <= 24)
_STYLE = {"description_width": "initial"}


def _layout() -> widgets.Layout:
    return widgets.Layout(width="300px")


def _float_label(value: float) -> str:
    return f"{value:.2f}"


def _selection(description: str, options: Sequence, value, label: Callable[..., str]):
    """A slider over exactly `options`, whose readout is label(option)."""
    options = list(options)
    if not options:
        raise ValueError(f"options for {description} must not be empty")
    labels = [label(v) for v in options]
    if len(set(labels)) != len(labels):
        raise ValueError(f"options for {description} must have distinct labels, got {labels}")
    if value not in options:
        raise ValueError(f"value must be one of {labels} for {description}, got {value!r}")
    return widgets.SelectionSlider(
        options=list(zip(labels, options, strict=True)), value=value, description=description,
        continuous_update=True, style=_STYLE, layout=_layout(),
    )  # fmt: skip


def sigma_min_slider(value: float = 0.0, max: float = 0.5, options: Sequence[float] | None = None):
    """sigma_min in [0, max] (0 allowed: the rectified-flow path), or exactly `options`."""
    if options is not None:
        bad = [s for s in options if not 0 <= s < 1]
        if bad:
            raise ValueError(f"options must lie in [0, 1), got {bad}")
        return _selection("σ_min", options, value, _float_label)
    if not 0 < max < 1:
        raise ValueError(f"max must be in (0, 1), got {max}")
    if not 0 <= value <= max:
        raise ValueError(f"value must be in [0, {max}], got {value}")
    return widgets.FloatSlider(
        value=value, min=0.0, max=max, step=0.01, description="σ_min",
        continuous_update=True, readout_format=".2f", style=_STYLE, layout=_layout(),
    )  # fmt: skip


def steps_slider(value: int = 10, max: int = 100, options: Sequence[int] | None = None):
    """Number of solver steps in [1, max] (one step is instructive), or exactly `options`."""
    if options is not None:
        bad = [n for n in options if not isinstance(n, int) or n < 1]
        if bad:
            raise ValueError(f"options must be integers >= 1, got {bad}")
        return _selection("steps", options, value, str)
    if not isinstance(max, int) or max < 1:
        raise ValueError(f"max must be an integer >= 1, got {max!r}")
    if not isinstance(value, int) or not 1 <= value <= max:
        raise ValueError(f"value must be an integer in [1, {max}], got {value!r}")
    return widgets.IntSlider(
        value=value, min=1, max=max, step=1, description="steps",
        continuous_update=True, style=_STYLE, layout=_layout(),
    )  # fmt: skip


def t_slider(value: float = 0.5, options: Sequence[float] | None = None) -> widgets.SelectionSlider:
    """Time t (0 is noise, 1 is data) over a grid, default 0, 0.05, ..., 1; `panel` links a
    Play button to it."""
    options = T_GRID if options is None else tuple(options)
    bad = [t for t in options if not 0 <= t <= 1]
    if bad:
        raise ValueError(f"options must lie in [0, 1], got {bad}")
    return _selection("t", options, value, _float_label)


def choice(description: str, options: Sequence[str], value: str) -> widgets.Dropdown:
    """A dropdown over named options (a solver, a dataset, a path, a coupling...)."""
    if value not in options:
        raise ValueError(f"value must be one of {', '.join(options)}; got {value!r}")
    return widgets.Dropdown(value=value, options=list(options), description=description)


def solver_dropdown(value: str = "midpoint", options: tuple[str, ...] = SOLVERS):
    """The ODE solver: Euler (order 1), midpoint (2), RK4 (4)."""
    return choice("solver", options, value)


def dataset_dropdown(value: str = "checkerboard", options: tuple[str, ...] | None = None):
    """The 2D target q (names from fmlib.data.DATASETS)."""
    from fmlib.data import DATASETS

    return choice("dataset", DATASETS if options is None else options, value)


def readout(control: widgets.ValueWidget) -> str:
    """The text a control shows for its value: what the figure must report as drawn."""
    if isinstance(control, widgets.SelectionSlider | widgets.Dropdown):
        for option in control.options:  # the label the browser shows for the value
            label, value = option if isinstance(option, tuple) else (str(option), option)
            if value == control.value:
                return str(label)
        return str(control.label)
    if isinstance(control, widgets.FloatSlider):
        return format(control.value, control.readout_format)
    return str(control.value)


def sweep(control: widgets.ValueWidget, n: int = 9) -> list:
    """About n values a control can take, spread over its whole range: what the readout test
    and the redraw benchmark visit. Float sliders get values off their default grid (never
    seen by a cache), integer sliders a geometric spread, selections evenly spaced options."""
    if isinstance(control, widgets.SelectionSlider | widgets.Dropdown):
        values = [v[1] if isinstance(v, tuple) else v for v in control.options]
        idx = np.unique(np.linspace(0, len(values) - 1, min(n, len(values))).round().astype(int))
        return [values[i] for i in idx]
    if isinstance(control, widgets.IntSlider):
        inside = np.geomspace(control.min, control.max, n).astype(int).tolist()
        return sorted({control.min, control.max, *inside})
    grid = np.linspace(control.min, control.max, n) + 0.37 * control.step
    return [control.min, control.max, *[round(float(v), 2) for v in grid if v < control.max]]


def render_png(draw: Callable[..., Figure] | LiveFigure, values: dict) -> bytes:
    """PNG of draw(**values): a LiveFigure blits; a plain function builds a new Figure."""
    if isinstance(draw, LiveFigure):
        with draw.lock:
            draw.update(**values)
            if figure_check.enabled() and not getattr(draw, "_readable_checked", False):
                figure_check.check(draw.fig, where=f"{type(draw).__name__}'s frame")
                draw._readable_checked = True  # the layout is built once: one check
                draw.invalidate()
            return draw.png()
    fig = draw(**values)
    if figure_check.enabled():
        figure_check.check(fig, where=f"{getattr(draw, '__name__', 'panel')}'s frame")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


class Redrawer:
    """Draw the latest requested values on one worker thread, dropping stale requests.

    `request(values)` returns at once, so the kernel drains every queued slider message while a
    redraw runs; when the redraw ends, only the newest values are drawn next. Once no request
    has come for AHEAD_AFTER_S, `ahead()` draws one frame the hand may ask for next (into a
    cache, not on screen) and is called again until it returns False; a request waits for at
    most the one frame being drawn ahead."""

    def __init__(
        self,
        render: Callable[[dict], None],
        on_error: Callable[[Exception], None],
        ahead: Callable[[], bool] | None = None,
    ):
        self._render, self._on_error, self._ahead = render, on_error, ahead
        self._cond = threading.Condition()
        self._pending: dict | None = None
        self._requested_at = 0.0
        self._running = False
        self._drawing = False  # a requested frame is being drawn (not one drawn ahead)
        self.drawn = 0  # how many requested redraws ran (tests check stale values are dropped)

    def request(self, values: dict) -> None:
        with self._cond:
            self._pending = dict(values)
            self._requested_at = time.monotonic()
            self._cond.notify()
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, daemon=True).start()

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
                try:
                    self._render(values)
                except Exception as exc:  # shown on the panel: a thread has no cell to fail in
                    self._on_error(exc)
                self.drawn += 1
                continue
            if self._ahead is not None and self._ahead():
                continue
            with self._cond:
                if self._pending is None:
                    self._running = self._drawing = False
                    return

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
        value=t.index, min=0, max=len(t.options) - 1, step=1, interval=PLAY_INTERVAL_MS,
        description="play t", layout=widgets.Layout(width="auto"),
    )  # fmt: skip
    widgets.jslink((play, "value"), (t, "index"))
    return play


def panel(
    draw: Callable[..., Figure] | LiveFigure, note: str | None = None, **controls
) -> widgets.VBox:
    """Controls on top, the figure `draw(**values)` below, redrawn live when a control moves.

    `draw` is a LiveFigure view (controls default to `draw.controls()`, the note to its NOTE;
    controls it reports in `inactive(**values)` are disabled with their reason) or any
    function returning a new Figure (then `controls` must be given).
    """
    if not callable(draw):
        raise ValueError(f"draw must be callable, got {type(draw).__name__}")
    is_view = isinstance(draw, LiveFigure)
    if not controls and is_view:
        controls = draw.controls()
        note = note if note is not None else draw.NOTE
    if not controls:
        raise ValueError("controls must name at least one widget, e.g. sigma_min=...")
    for name, control in controls.items():
        if not isinstance(control, widgets.ValueWidget):
            raise ValueError(f"control {name!r} must be an ipywidgets value widget")

    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
    status = widgets.HTML()

    def values() -> dict:
        return {name: control.value for name, control in controls.items()}

    cache = FrameCache()
    shown: dict = {}  # the values of the picture on screen
    moved: list[str] = []  # the control the hand moved last
    broken: set[tuple] = set()  # frames that failed when drawn ahead: not tried again

    def frame(vals: dict) -> tuple[bytes, dict]:
        hit = cache.get(vals)
        if hit is None:
            reasons = draw.inactive(**vals) if is_view else {}
            hit = (render_png(draw, vals), reasons)
            cache.put(vals, hit)
        return hit

    def show(vals: dict) -> None:
        png, reasons = frame(vals)
        image.value = png
        shown.clear()
        shown.update(vals)
        for name, control in controls.items():
            control.disabled = name in reasons
        status.value = "".join(
            f"<div><i>{html.escape(controls[n].description or n)}: {html.escape(r)}</i></div>"
            for n, r in reasons.items() if n in controls
        )  # fmt: skip

    def ahead() -> bool:
        """Draw one not-yet-drawn frame next to the one on screen, along t (Play) first, then
        along the control moved last; False when there is none."""
        reasons = cache.get(shown)[1] if shown in cache else {}
        names = [n for n in dict.fromkeys(["t", *moved[-1:]]) if n in controls]
        for name in names:
            if name in reasons:
                continue
            for value in nearby(controls[name], shown[name]):
                candidate = {**shown, name: value}
                if candidate in cache or FrameCache.key(candidate) in broken:
                    continue
                try:
                    frame(candidate)
                except Exception:  # drawn again, and reported, if the hand gets there
                    broken.add(FrameCache.key(candidate))
                return True
        return False

    def failed(exc: Exception) -> None:
        status.value = f"<div style='color:#b00'>redraw failed: {html.escape(repr(exc))}</div>"

    def changed(name: str) -> None:
        moved[:] = [name]
        redrawer.request(values())

    show(values())  # the first picture now, in the cell (an error here fails the cell)
    redrawer = Redrawer(show, failed, ahead)
    for name, control in controls.items():
        control.observe(lambda _change, name=name: changed(name), names="value")

    row = list(controls.values())
    t = controls.get("t")
    if isinstance(t, widgets.SelectionSlider):
        row.insert(0, _link_play(t))
    parts = [widgets.HBox(row, layout=widgets.Layout(flex_flow="row wrap"))]
    if note:
        parts.append(widgets.HTML(f"<div><i>{html.escape(note)}</i></div>"))
    box = widgets.VBox([*parts, status, image])
    box.redrawer = redrawer  # for tests: how many redraws ran, whether one is running
    return box
