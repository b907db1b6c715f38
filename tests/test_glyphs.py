"""fmlib.glyphs: glyphs pasted from kept bitmaps are pixel for pixel matplotlib's own."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fmlib import glyphs
from fmlib.figures import REGISTRY

pytestmark = pytest.mark.skipif(not glyphs._SUPPORTED, reason="another matplotlib: not used")


def _texts(shift: float) -> np.ndarray:
    """A figure of upright, rotated and math text at places `shift` px apart (sub-pixel)."""
    fig = Figure(figsize=(4, 3), dpi=80)
    ax = fig.add_axes((0.2, 0.2, 0.7, 0.6))
    ax.set_xlim(0, 1 + shift / 100)
    ax.set_title(f"σ_min = {0.1 + shift:.3f}, steps K = 10: std 0.123", fontsize=9)
    ax.set_ylabel("density (rotated)")
    ax.text(0.1 + shift / 224, 0.5, "K → ∞: N(m, σ_min²) fi ffl", fontsize=8)
    ax.text(0.1, 0.2 + shift / 168, r"$x^{(1)}_t = \sqrt{t}$ math", fontsize=8)
    canvas = FigureCanvasAgg(fig)
    glyphs.keep_glyphs(canvas.get_renderer())
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


@pytest.mark.parametrize("shift", [0.0, 0.3, 0.55, 1.7, 2.25])
def test_kept_glyphs_draw_matplotlibs_pixels(monkeypatch, shift):
    monkeypatch.setattr(glyphs, "enabled", False)
    plain = _texts(shift)
    monkeypatch.setattr(glyphs, "enabled", True)
    first, again = _texts(shift), _texts(shift)  # rendered, then pasted from the bitmaps
    assert np.array_equal(first, plain)
    assert np.array_equal(again, plain)


def test_a_glyph_is_rendered_once_per_subpixel_place(monkeypatch):
    monkeypatch.setattr(glyphs, "_bitmaps", type(glyphs._bitmaps)())
    _texts(0.3)
    kept = len(glyphs._bitmaps)
    assert kept > 20
    _texts(0.3)
    assert len(glyphs._bitmaps) == kept  # the same places: nothing rendered again


def test_a_live_view_is_the_same_picture(monkeypatch):
    entry = next(e for e in REGISTRY if e.name == "change_of_variables.ResidualFlow")
    pictures = {}
    for use in (False, True):
        monkeypatch.setattr(glyphs, "enabled", use)
        view, pictures[use] = entry.make(), []
        for sigma_min in (0.12, 0.27, 0.12):  # new numbers in the titles, then the same again
            view.update(**{**entry.values, "sigma_min": sigma_min})
            pictures[use].append(view.raster())
    for plain, kept in zip(pictures[False], pictures[True], strict=True):
        assert np.array_equal(plain, kept)
