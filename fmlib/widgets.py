"""Slider factories with the course's ranges, and `panel`: the one widget pattern.

Pattern: precompute what the sliders do not change; a `LiveFigure` in fmlib whose
`draw(**values)` returns the Figure; `panel(view, sigma_min=sigma_min_slider(), ...)` in
the notebook. The same view's `draw` is called once with fixed values for the static page.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Image, display
from matplotlib.figure import Figure

from fmlib.plots import LiveFigure

SOLVERS = ("euler", "midpoint", "rk4")
_STYLE = {"description_width": "initial"}
_LAYOUT = widgets.Layout(width="300px")


def sigma_min_slider(value: float = 0.0, max: float = 0.5) -> widgets.FloatSlider:
    """sigma_min in [0, max] (0 allowed: the rectified-flow / linear-interpolation path)."""
    if not 0 < max < 1:
        raise ValueError(f"max must be in (0, 1), got {max}")
    if not 0 <= value <= max:
        raise ValueError(f"value must be in [0, {max}], got {value}")
    return widgets.FloatSlider(
        value=value, min=0.0, max=max, step=0.01, description="σ_min",
        continuous_update=False, readout_format=".2f", style=_STYLE, layout=_LAYOUT,
    )  # fmt: skip


def steps_slider(value: int = 10, max: int = 100) -> widgets.IntSlider:
    """Number of solver steps in [1, max] (one step is instructive)."""
    if not isinstance(max, int) or max < 1:
        raise ValueError(f"max must be an integer >= 1, got {max!r}")
    if not isinstance(value, int) or not 1 <= value <= max:
        raise ValueError(f"value must be an integer in [1, {max}], got {value!r}")
    return widgets.IntSlider(
        value=value, min=1, max=max, step=1, description="steps",
        continuous_update=False, style=_STYLE, layout=_LAYOUT,
    )  # fmt: skip


def t_slider(value: float = 0.5) -> widgets.FloatSlider:
    """Time t in [0, 1]: 0 is noise, 1 is data."""
    if not 0 <= value <= 1:
        raise ValueError(f"value must be in [0, 1], got {value}")
    return widgets.FloatSlider(
        value=value, min=0.0, max=1.0, step=0.05, description="t",
        continuous_update=False, readout_format=".2f", style=_STYLE, layout=_LAYOUT,
    )  # fmt: skip


def solver_dropdown(value: str = "midpoint", options: tuple[str, ...] = SOLVERS):
    """The ODE solver: Euler (order 1), midpoint (2), RK4 (4)."""
    if value not in options:
        raise ValueError(f"value must be one of {', '.join(options)}; got {value!r}")
    return widgets.Dropdown(value=value, options=list(options), description="solver")


def dataset_dropdown(value: str = "checkerboard", options: tuple[str, ...] | None = None):
    """The 2D target q (names from fmlib.data.DATASETS)."""
    from fmlib.data import DATASETS

    options = DATASETS if options is None else options
    if value not in options:
        raise ValueError(f"value must be one of {', '.join(options)}; got {value!r}")
    return widgets.Dropdown(value=value, options=list(options), description="dataset")


def panel(
    draw: Callable[..., Figure] | LiveFigure, **controls: widgets.ValueWidget
) -> widgets.VBox:
    """Controls on top, the figure `draw(**values)` below, redrawn when a control changes.

    `draw` is a `LiveFigure` (fast: only the changing artists are redrawn, see
    fmlib.plots.LiveFigure) or any function returning a new Figure (slow: built each time).
    """
    if not callable(draw):
        raise ValueError(f"draw must be callable, got {type(draw).__name__}")
    if not controls:
        raise ValueError("controls must name at least one widget, e.g. sigma_min=...")
    for name, control in controls.items():
        if not isinstance(control, widgets.ValueWidget):
            raise ValueError(f"control {name!r} must be an ipywidgets value widget")

    def show(**values) -> None:
        if isinstance(draw, LiveFigure):
            draw.update(**values)
            display(Image(data=draw.png(), format="png"))
            return
        fig = draw(**values)
        display(fig)
        plt.close(fig)  # the Output widget keeps the PNG; free the figure

    out = widgets.interactive_output(show, controls)
    row = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
    return widgets.VBox([row, out])
