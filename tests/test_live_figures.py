"""Every widget view (fmlib.plots.LiveFigure): the fast blitted redraw shows what a full
render of the same figure shows, and a slider change changes the picture."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from fmlib import plots, widgets
from fmlib.figures import all_views, continuity, discrete, marginalization

VIEWS = all_views()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _full_render(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.int16)


def test_there_are_views():
    assert len(VIEWS) >= 1
    for name, make_view, _ in VIEWS:
        assert isinstance(make_view(), plots.LiveFigure), name


@pytest.mark.parametrize("name, make_view, kwargs", VIEWS, ids=[v[0] for v in VIEWS])
def test_blitted_png_matches_full_render(name, make_view, kwargs):
    view = make_view()
    view.update(**kwargs)
    for attempt in ("first", "second"):  # the first png() also caches the background
        fast = _pixels(view.png())
        full = _full_render(view.fig)
        assert fast.shape == full.shape
        differs = np.abs(fast - full).max(axis=2) > 40
        # Normally identical; a hidden static marker (a star under a dynamic line) is ~0.1 %.
        share = differs.mean()
        assert share < 2e-4, f"{name}, {attempt} png: {share:.3%} of the pixels differ"
        view.update(**kwargs)


@pytest.mark.parametrize("name, make_view, kwargs", VIEWS, ids=[v[0] for v in VIEWS])
def test_update_changes_the_picture(name, make_view, kwargs):
    view = make_view()
    view.update(**kwargs)
    before = _pixels(view.png())
    changed = _other_values(view, kwargs)
    view.update(**{**kwargs, **changed})
    after = _pixels(view.png())
    assert (np.abs(after - before).max(axis=2) > 40).mean() > 0.001, f"{name} did not change"


def _other_values(view, values: dict) -> dict:
    """Each value changed: to another value its control offers (a view may draw only those,
    e.g. 08's shipped models exist at sigma_min = 0 only), else by `_other_value`."""
    controls = view.controls()
    changed = {}
    for key, value in values.items():
        options = getattr(controls.get(key), "options", ())
        options = [o[1] if isinstance(o, tuple) else o for o in options]
        others = [o for o in options if o != value]
        changed[key] = others[0] if others else value if options else _other_value(value)
    return changed


def _other_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value < 4 else value // 2
    if isinstance(value, float):
        return 0.5 * value if value > 0 else 0.3
    return value


def test_live_figure_has_no_pyplot_figure_and_renders_png():
    class Line(plots.LiveFigure):
        def build(self):
            fig, (ax,) = plots.new_axes(1)
            (self.line,) = ax.plot([], [])
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            self.dynamic(self.line)
            return fig

        def update(self, slope: float = 1.0) -> None:
            self.line.set_data([0, 1], [0, slope])

    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    view = Line()
    assert plt.get_fignums() == before  # not shown again by the inline backend
    png = view.png()
    assert png.startswith(b"\x89PNG")
    assert view.draw(slope=0.5) is view.fig
    assert isinstance(view.line, Line2D) and list(view.line.get_ydata()) == [0, 0.5]
    box = widgets.panel(view, slope=widgets.t_slider(0.5))
    assert bytes(box.children[-1].value) == view.png()  # the panel shows the view's picture


STATIC_DRAWS = [  # (static draw, its view, values): the page shows the widget's picture
    (
        continuity.Continuity.draw,
        continuity.Continuity,
        {"sigma_min": 0.1, "t": 0.4, "steps": 6, "n": 65, "field": "VP path's field"},
    ),
    (
        marginalization.Marginalization.draw,
        marginalization.Marginalization,
        {"sigma_min": 0.02, "t": 0.9, "steps": 12, "n_points": 20},
    ),
    (
        discrete.DiscretePath.draw,
        discrete.DiscretePath,
        {"steps": 4, "power": 1.0, "source": "mask", "t": 0.5},
    ),
]


@pytest.mark.parametrize(("draw", "make_view", "kwargs"), STATIC_DRAWS)
def test_draw_is_the_views_picture_on_a_pyplot_figure(draw, make_view, kwargs):
    """The static page's figure (shown by plt.show()) is the widget's picture."""
    fig = draw(**kwargs)
    assert fig.number in plt.get_fignums()
    view = make_view()
    view.update(**kwargs)
    assert np.array_equal(_full_render(fig), _full_render(view.fig))
    plt.close(fig)


def test_a_bad_value_leaves_no_static_figure_behind():
    before = plt.get_fignums()
    with pytest.raises(ValueError, match="sigma_min must be in"):
        continuity.Continuity.draw(sigma_min=2.0)
    assert plt.get_fignums() == before


class Titled(plots.LiveFigure):
    """A line and two dynamic titles: one follows the slope, one never changes."""

    def build(self):
        fig, (ax, bx) = plots.new_axes(2)
        (self.line,) = ax.plot([], [])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        self.titles = (ax.set_title("slope = 0.00"), bx.set_title("$p_t$, fixed"))
        self.dynamic(self.line, *self.titles)
        return fig

    def update(self, slope: float = 1.0) -> None:
        self.line.set_data([0, 1], [0, slope])
        self.titles[0].set_text(f"slope = {slope:.2f}")


def test_a_label_is_laid_out_once_per_look_and_pasted_after(monkeypatch):
    view = Titled()
    view.update(slope=0.2)
    pictures = {0.2: [_pixels(view.png())]}  # the background, and each label's first picture
    drawn = []
    draw = Text.draw
    monkeypatch.setattr(Text, "draw", lambda t, r: (drawn.append(t.get_text()), draw(t, r)))
    for slope in (0.4, 0.2):
        view.update(slope=slope)
        pictures.setdefault(slope, []).append(_pixels(view.png()))
    assert drawn == ["slope = 0.40"]  # a new text is drawn; the others are pasted
    assert np.array_equal(*pictures[0.2])  # pasted = drawn
    assert not np.array_equal(pictures[0.2][0], pictures[0.4][0])
    full = _full_render(view.fig)  # matplotlib's own drawing of every text
    assert (np.abs(pictures[0.2][1] - full).max(axis=2) > 40).mean() < 2e-4


def test_a_raster_asked_to_stop_gives_up_and_the_next_one_is_whole():
    view = Titled()
    view.update(slope=0.3)
    whole = _pixels(view.png())
    asked = []
    assert view.raster(stop=lambda: asked.append(1) or len(asked) > 1) is None  # after 1 artist
    assert len(asked) == 2
    view.update(slope=0.3)
    assert np.array_equal(_pixels(view.png()), whole)
