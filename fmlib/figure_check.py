"""Is a figure readable on a projector? Overlapping text, clipped text and tiny text.

A lecturer projects the course at 1280 x 720. A figure is drawn at its own size and dpi
(plots' course style: 80 dpi); when its picture is wider than 1280 pixels the browser
scales it down, and its text shrinks with it. `text_problems(fig)` lists, in words:
- text smaller than `MIN_PT` points after that scaling;
- two visible texts whose boxes overlap (titles, axis labels, tick labels, legends,
  annotations, colour-bar labels);
- text that sticks out of the figure (a clipped title or label).

`FMLIB_CHECK_FIGURES=1` (set by `make test` for nbval) makes `plt.show()` and every widget
panel's first frame raise `ValueError` with the list, so a notebook with an unreadable
figure fails.
"""

from __future__ import annotations

import os
from itertools import combinations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

SCREEN_WIDTH_PX = 1280
MIN_PT = 8.0
OVERLAP_PX = 1.0  # boxes must share more than this many pixels each way to count
ENV = "FMLIB_CHECK_FIGURES"


def enabled() -> bool:
    """True when $FMLIB_CHECK_FIGURES asks for figure checks (make test sets it)."""
    return os.environ.get(ENV, "") not in ("", "0")


def _shown(text: Text) -> bool:
    return bool(text.get_visible() and text.get_text().strip() and text.get_alpha() != 0)


def _axis_texts(ax) -> list[Text]:
    texts = [ax.title, ax._left_title, ax._right_title]
    for axis in (ax.xaxis, ax.yaxis):
        texts.append(axis.label)
        if axis.get_visible():
            for tick in axis._update_ticks():  # the ticks that are drawn, not stale ones
                texts += [tick.label1, tick.label2] if tick.get_visible() else []
        texts.append(axis.offsetText)
    texts += ax.texts
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        texts += legend.get_texts() + [legend.get_title()]
    return texts


def visible_texts(fig: Figure) -> list[Text]:
    """Every text a reader sees: figure-level texts and those of every visible axes."""
    texts = list(fig.texts)
    for attr in ("_suptitle", "_supxlabel", "_supylabel"):
        text = getattr(fig, attr, None)
        if text is not None and text not in texts:  # a suptitle is also in fig.texts
            texts.append(text)
    for legend in fig.legends:
        texts += legend.get_texts() + [legend.get_title()]
    for ax in fig.get_axes():
        if ax.get_visible():
            texts += _axis_texts(ax)
    return [t for t in texts if _shown(t)]


def _label(text: Text) -> str:
    return repr(text.get_text().strip()[:40])


def _overlap(a: Bbox, b: Bbox) -> bool:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width > OVERLAP_PX and height > OVERLAP_PX


def _sticks_out(box: Bbox, frame: Bbox) -> bool:
    return (
        box.x0 < frame.x0 - 1
        or box.y0 < frame.y0 - 1
        or box.x1 > frame.x1 + 1
        or box.y1 > frame.y1 + 1
    )


def text_problems(fig: Figure, clipped: bool = True) -> list[str]:
    """What makes `fig` unreadable at 1280 x 720, one line each; [] when nothing does.

    `clipped=False` skips the edge test: the notebooks' inline pictures are cut to the
    bounding box of what is drawn, so nothing there is clipped; a panel's frame is not."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width_px = fig.get_figwidth() * fig.dpi
    scale = min(1.0, SCREEN_WIDTH_PX / width_px)
    texts = visible_texts(fig)
    boxes = [t.get_window_extent(renderer) for t in texts]
    problems = []
    for text, box in zip(texts, boxes, strict=True):
        size = text.get_fontsize() * scale
        if size < MIN_PT - 1e-9:
            problems.append(
                f"text {_label(text)} is {size:.1f} pt on a 1280-px screen (< {MIN_PT:g})"
            )
        if clipped and _sticks_out(box, fig.bbox):
            problems.append(f"text {_label(text)} is clipped by the figure's edge")
    for (ta, a), (tb, b) in combinations(zip(texts, boxes, strict=True), 2):
        if _overlap(a, b):
            problems.append(f"texts {_label(ta)} and {_label(tb)} overlap")
    return problems


def check(fig: Figure, where: str = "figure", clipped: bool = True) -> None:
    """Raise ValueError listing the problems of `fig` (none: return quietly)."""
    problems = text_problems(fig, clipped)
    if problems:
        raise ValueError(f"{where} is not readable at 1280 x 720:\n  " + "\n  ".join(problems))


_plain_show = plt.show


def _checked_show(*args, **kwargs):
    for number in plt.get_fignums():
        check(plt.figure(number), where=f"figure {number}", clipped=False)
    return _plain_show(*args, **kwargs)


def install() -> None:
    """Make plt.show() check every open figure first (a no-op unless `enabled()`)."""
    if enabled():
        plt.show = _checked_show
