"""The course's controls and `panel`: the one widget pattern.

Pattern: precompute what the controls do not change; a `LiveFigure` view in fmlib/figures whose
`controls()` returns the controls below and whose `update(**values)` redraws; in the notebook,
`widgets.panel(view)`. The same view drawn once with fixed values is the static page.

Honest controls: a slider offers only values its view draws (`options=`: a selection slider
over precomputed values) and its readout is the drawn value; a control with no effect at the
current values is disabled with its reason (`view.inactive`); a control with no meaning in a
notebook is absent, and the view's NOTE says why.

Live: every control updates while it is dragged; `panel` is fmlib.panel.Panel (one worker
thread, the latest value wins, frames drawn ahead, Play on t).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from fmlib.checks import check_int
from fmlib.panel import (  # noqa: F401  (re-exported: the panel's names, as before)
    AHEAD_AFTER_S,
    AHEAD_VALUES,
    FRAME_CACHE,
    PLAY_INTERVAL_MS,
    FrameCache,
    Panel,
    Redrawer,
    nearby,
    render_png,
)
from fmlib.plots import LiveFigure

SOLVERS = ("euler", "midpoint", "rk4")
T_GRID = tuple(round(k / 20, 2) for k in range(21))  # t = 0, 0.05, ..., 1
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
        options=list(zip(labels, options, strict=True)),
        value=value,
        description=description,
        continuous_update=True,
        style=_STYLE,
        layout=_layout(),
    )


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
        value=value,
        min=0.0,
        max=max,
        step=0.01,
        description="σ_min",
        continuous_update=True,
        readout_format=".2f",
        style=_STYLE,
        layout=_layout(),
    )


def steps_slider(value: int = 10, max: int = 100, options: Sequence[int] | None = None):
    """Number of solver steps in [1, max] (one step is instructive), or exactly `options`."""
    if options is not None:
        bad = [n for n in options if not isinstance(n, int) or n < 1]
        if bad:
            raise ValueError(f"options must be integers >= 1, got {bad}")
        return _selection("steps", options, value, str)
    check_int("max", max)
    check_int("value", value, 1, max)
    return widgets.IntSlider(
        value=value,
        min=1,
        max=max,
        step=1,
        description="steps",
        continuous_update=True,
        style=_STYLE,
        layout=_layout(),
    )


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


def panel(draw: Callable[..., Figure] | LiveFigure, note: str | None = None, **controls) -> Panel:
    """Controls on top, the figure `draw(**values)` below, redrawn live when a control moves:
    `widgets.panel(view)` in a notebook. See fmlib.panel.Panel."""
    return Panel(draw, note, **controls)
