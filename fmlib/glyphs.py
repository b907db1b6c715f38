"""Glyph bitmaps kept between a live view's redraws (plumbing for fmlib.plots.LiveFigure).

A title or tick label whose numbers change is drawn glyph by glyph on every redraw, and
matplotlib's Agg renderer (3.11) asks FreeType to render each glyph each time: profiled on
notebook 01's 94-glyph title, FreeType's rendering is 55 % of its 4.4 ms (shaping the string
30 %, pasting the bitmaps 14 %). A glyph's bitmap depends only on its font file, size, dpi,
hinting and the sub-pixel part of its place; the whole-pixel part only moves it. So
`keep_glyphs(renderer)` makes that renderer render each such glyph once and paste it after,
pixel for pixel what matplotlib draws (tests/test_glyphs.py). Upright anti-aliased text only;
anything else (rotated labels, mathtext's rules, another matplotlib without these internals)
is drawn by matplotlib as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import RendererAgg, get_hinting_flag
from matplotlib.ft2font import FT2Font

try:
    from matplotlib.ft2font import RenderMode
except ImportError:  # an older matplotlib: no glyph-by-glyph drawing to take over
    RenderMode = None

GLYPHS = 8192  # bitmaps kept (a few hundred bytes each)
_IDENTITY = np.array([[0x10000, 0], [0, 0x10000]])  # FreeType's 16.16 unit matrix
_SUPPORTED = RenderMode is not None and all(
    hasattr(cls, name)
    for cls, name in (
        (RendererAgg, "_draw_text_glyphs_and_boxes"),
        (FT2Font, "_render_glyph"),
        (FT2Font, "_set_transform"),
    )
)
_lock = threading.Lock()
_bitmaps: OrderedDict[tuple, tuple[np.ndarray, int, int]] = OrderedDict()
enabled = True  # tests switch it off to compare with matplotlib's own drawing


def keep_glyphs(renderer: RendererAgg) -> RendererAgg:
    """The same renderer, drawing upright anti-aliased glyphs from the kept bitmaps."""
    if _SUPPORTED and not getattr(renderer, "_fmlib_glyphs", False):
        original = renderer._draw_text_glyphs_and_boxes

        def draw(gc, x, y, angle, glyphs, boxes):
            glyphs = list(glyphs)
            upright = not angle and all(g[3] == 0 and g[4] == 1 for g in glyphs)  # slant, extend
            if enabled and upright and not boxes and gc.get_antialiased():
                _paste(renderer, gc, x, y, glyphs)
            else:
                original(gc, x, y, angle, glyphs, boxes)

        renderer._draw_text_glyphs_and_boxes = draw
        renderer._fmlib_glyphs = True
    return renderer


def _paste(renderer: RendererAgg, gc, x: float, y: float, glyphs: list) -> None:
    """Each glyph's bitmap where matplotlib would draw it (its place in 1/64 px, y upwards)."""
    flags = get_hinting_flag()
    for font, size, index, _slant, _extend, dx, dy in glyphs:
        px = round(0x40 * (x + dx))
        py = round(0x40 * (renderer.height - y + dy))
        buffer, left, top = _bitmap(font, size, renderer.dpi, index, flags, px % 64, py % 64)
        left, top = left + px // 64, top + py // 64
        renderer._renderer.draw_text_image(
            buffer, left, int(renderer.height) - top + buffer.shape[0], 0, gc
        )


def _bitmap(font: FT2Font, size: float, dpi: float, index: int, flags, sx: int, sy: int):
    """(bitmap, left, top) of a glyph placed at (sx, sy) / 64 px, rendered once."""
    key = (font.fname, size, dpi, index, flags, mpl.rcParams["text.hinting_factor"], sx, sy)
    with _lock:
        hit = _bitmaps.get(key)
        if hit is not None:
            _bitmaps.move_to_end(key)
            return hit
    font.set_size(size, dpi)
    font._set_transform(_IDENTITY, [sx, sy])
    bitmap = font._render_glyph(index, flags, RenderMode.NORMAL)
    hit = (np.array(bitmap.buffer, copy=True), bitmap.left, bitmap.top)
    with _lock:
        _bitmaps[key] = hit
        if len(_bitmaps) > GLYPHS:
            _bitmaps.popitem(last=False)
    return hit
