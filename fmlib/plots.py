"""The course's figure style and the small plotting helpers every notebook shares.

Plumbing only (styling, grids, colorbars): the lesson's own lines stay in the notebooks.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import to_rgba_array
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from torch import Tensor

from fmlib import figure_check
from fmlib.checks import check_int
from fmlib.glyphs import keep_glyphs
from fmlib.png import png_bytes

CMAP = "viridis"  # one colormap for every density and heatmap in the course
DIVERGING = "RdBu_r"  # for signed quantities (residuals, errors)
SOURCE_COLOR = "#4C72B0"  # x0 ~ p (noise)
TARGET_COLOR = "#DD8452"  # x1 ~ q (data)
PATH_COLOR = "#55A868"  # x_t along the path
LIM = 4.5  # default half-width of 2D views: N(0, I) and the 2D targets fit inside
# One fixed colour scale for the maps of log p_t (notebooks 04 and 07; a redraw only changes
# the data): the tails are clamped at -12; the peak is -1.8 at t = 0 (N(0, I)), -2.3 .. -1.3
# for t in [0.5, 0.8] on notebook 04's point sets and grows without bound as sigma_t -> 0
# (0.5 at t = 0.95 for 10 points, sigma_min = 0.05): above 2 the colour saturates.
LOG_P_FLOOR, LOG_P_CEIL = -12.0, 2.0
LABEL_LAYERS = 64  # pictures of texts and legends a LiveFigure keeps per artist

_STYLE = {
    "figure.dpi": 80,  # small PNGs keep widget redraws fast
    "savefig.dpi": 80,
    "figure.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "image.cmap": CMAP,
    "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply the course style to matplotlib (call once, in the setup cell).

    With $FMLIB_CHECK_FIGURES=1 (make test), plt.show() also checks every figure is
    readable on a projector (fmlib.figure_check)."""
    mpl.rcParams.update(_STYLE)
    figure_check.install()


def new_axes(n: int = 1, size: float = 3.2, ncols: int | None = None) -> tuple[Figure, list[Axes]]:
    """A figure with n square panels of side `size` inches, returned as a flat list of axes."""
    check_int("n", n)
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    ncols = n if ncols is None else ncols
    check_int("ncols", ncols)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def scatter2d(
    ax: Axes,
    x: Tensor | np.ndarray,
    title: str | None = None,
    lim: float = LIM,
    color: str = TARGET_COLOR,
    s: float = 2.0,
    alpha: float = 0.5,
    label: str | None = None,
) -> None:
    """A 2D point cloud x: [N, 2] on equal axes [-lim, lim]^2."""
    pts = _numpy(x)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"x must have shape [N, 2], got {tuple(pts.shape)}")
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color, lw=0, label=label)
    square(ax, lim)
    if title:
        ax.set_title(title)


def square(ax: Axes, lim: float = LIM) -> None:
    """Equal aspect on [-lim, lim]^2 with labelled axes: the frame of every 2D view."""
    if lim <= 0:
        raise ValueError(f"lim must be > 0, got {lim}")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x^{(1)}$")
    ax.set_ylabel("$x^{(2)}$")


def heatmap(
    ax: Axes,
    z: Tensor | np.ndarray,
    extent: tuple[float, float, float, float],
    title: str | None = None,
    label: str | None = None,
    cmap: str = CMAP,
    vmin: float | None = None,
    vmax: float | None = None,
):
    """z: [ny, nx] on `extent` = (xmin, xmax, ymin, ymax), with a labelled colorbar."""
    img = _numpy(z)
    if img.ndim != 2:
        raise ValueError(f"z must be 2-D [ny, nx], got shape {tuple(img.shape)}")
    im = ax.imshow(
        img, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal"
    )
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    ax.grid(False)
    if title:
        ax.set_title(title)
    return im


def grid2d(lim: float = LIM, n: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """A regular n x n grid on [-lim, lim]^2: (xx [n, n], yy [n, n], points [n*n, 2]).

    Row i of xx / yy is y = yy[i, 0] (image convention), so `f(points).reshape(n, n)` can
    be passed straight to `heatmap(..., extent=(-lim, lim, -lim, lim))`.
    """
    if lim <= 0:
        raise ValueError(f"lim must be > 0, got {lim}")
    check_int("n", n, 2)
    axis = torch.linspace(-lim, lim, n)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return xx, yy, torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


class _ViewOrClassMethod:
    """`draw` on a view redraws that view; `draw` on a view class makes a new pyplot figure."""

    def __init__(self, method) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __get__(self, view, cls):
        if view is not None:
            return types.MethodType(self.method, view)

        def draw(*args, **values) -> Figure:
            view = cls(*args, pyplot=True)
            try:
                return view.draw(**values)
            except Exception:  # a bad value: no half-drawn figure left for plt.show()
                plt.close(view.fig)
                raise

        draw.__doc__ = f"{cls.__name__}(*args) drawn at values, on a new pyplot Figure."
        return draw


class LiveFigure:
    """A figure built once whose data changes: the fast path behind every widget panel.

    Building a figure (axes, ticks, labels, layout) costs 0.3-0.8 s in matplotlib; drawing a
    few lines, points or an image costs milliseconds. A subclass builds everything in
    `build()`, registers the artists that the sliders change with `dynamic(...)`, and sets
    their data in `update(**values)`. `png()` then draws only those artists over a cached
    picture of the rest (blitting) and encodes the result: a redraw costs the maths plus
    ~10 ms. Axis limits, ticks and colorbar ranges are part of the cached picture, so they
    must not depend on the values (call `invalidate()` if they do).

    The static picture is the same view: `View.draw(*args, **values)` on the class builds
    `View(*args)` on a new pyplot Figure (so that `plt.show()` shows it) and returns it drawn
    at `values`; `view.draw(**values)` on a view updates that view's own figure (a widget's
    view owns its figure, `pyplot=False`: no stray inline display). No `draw_<view>` wrapper
    is needed.

    A widget panel (fmlib.widgets.panel) asks the view for its `controls()`, shows its NOTE,
    and disables the controls that `inactive(**values)` names. Panels redraw on a worker
    thread, so `draw` and `png` hold `lock`.
    """

    NOTE: str | None = None  # one line under the controls, e.g. why there is no sigma_min

    def __init__(self, pyplot: bool = False) -> None:
        self.lock = threading.RLock()
        self._dynamic: list[Artist] = []
        self._background = None
        self._layers: dict[int, dict[tuple, tuple]] = {}  # label pictures (see `_layer`)
        self._scratch: RendererAgg | None = None
        self.fig = self.build()
        if not pyplot:
            plt.close(self.fig)  # owned by this object, not by pyplot
            FigureCanvasAgg(self.fig)  # closing detached the canvas; blitting needs Agg's

    def build(self) -> Figure:
        raise NotImplementedError

    def update(self, **values) -> None:
        raise NotImplementedError

    def controls(self) -> dict:
        """{value name: ipywidgets control} offering exactly the values this view draws."""
        raise NotImplementedError(f"{type(self).__name__} must define controls()")

    def inactive(self, **values) -> dict[str, str]:
        """{value name: one-line reason} for the controls that have no effect at `values`."""
        return {}

    def dynamic(self, *artists: Artist) -> None:
        """Mark artists that `update` changes (titles included); the rest is cached.

        Static artists that must stay on top of a dynamic one are registered too."""
        self._dynamic.extend(artists)
        self._background = None

    def invalidate(self) -> None:
        """Re-render the cached background on the next `png()` (static parts changed)."""
        self._background = None

    @_ViewOrClassMethod
    def draw(self, **values) -> Figure:
        """view.draw(**values): update(**values) and return the view's whole figure.
        View.draw(*args, **values) (on the class): the same picture on a new pyplot Figure."""
        with self.lock:
            self.update(**values)
            return self.fig

    def __call__(self, **values) -> Figure:
        return self.draw(**values)

    def _capture_background(self) -> None:
        self.fig.canvas.draw()  # everything visible: the layout engine sizes titles too
        self.fig.set_layout_engine("none")  # then positions are frozen
        visible = [a.get_visible() for a in self._dynamic]
        # Drawing an axes moves its titles (above the tick labels); with the titles hidden
        # they would land elsewhere, so their laid-out positions are kept.
        positions = [a.get_position() if isinstance(a, Text) else None for a in self._dynamic]
        for a in self._dynamic:
            a.set_visible(False)
        self.fig.canvas.draw()
        self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for a, v, xy in zip(self._dynamic, visible, positions, strict=True):
            a.set_visible(v)
            if xy is not None:
                a.set_position(xy)
        self._layers = {}  # positions may have moved with the layout

    def raster(self, stop: Callable[[], bool] | None = None) -> np.ndarray | None:
        """The current figure as RGB pixels [H, W, 3], redrawing only the dynamic artists.

        Texts and legends (most of a redraw's time is matplotlib laying out and rendering
        glyphs) are pasted from a picture of the same text at the same place when one exists
        (`_layer`); every other artist is drawn. A text drawn anew (new numbers, an axis whose
        limits moved) takes its glyphs' bitmaps from fmlib.glyphs. `stop`, asked before each
        artist, may abandon the picture (None; a frame drawn ahead giving way to the hand)."""
        with self.lock:
            if self._background is None:
                self._capture_background()
            canvas = self.fig.canvas
            keep_glyphs(canvas.get_renderer())  # titles and tick labels whose numbers change
            canvas.restore_region(self._background)
            pixels = None
            for artist in sorted(self._dynamic, key=lambda a: a.get_zorder()):  # as matplotlib
                if stop is not None and stop():
                    return None
                layer = self._layer(artist)
                if layer is None:
                    self.fig.draw_artist(artist)
                    continue
                (y0, y1, x0, x1), rgb, alpha = layer
                if pixels is None:
                    pixels = np.asarray(canvas.buffer_rgba())
                under = pixels[y0:y1, x0:x1, :3]
                under[...] = np.rint(rgb * alpha + under * (1 - alpha)).astype(np.uint8)
            return np.array(canvas.buffer_rgba())[..., :3]

    def _layer(self, artist: Artist) -> tuple | None:
        """A text's or legend's picture, drawn alone on a transparent canvas: ((y0, y1, x0, x1),
        RGB, alpha) of the pixels it covers, or None for any other artist (or one whose look
        `_label_key` cannot tell). Kept by the artist's text, font, colours and place, so a
        label that did not change costs a paste instead of a layout and a glyph rendering."""
        key = _label_key(artist)
        if key is None:
            return None
        layers = self._layers.setdefault(id(artist), {})
        if key not in layers:
            width, height = self.fig.canvas.get_width_height(physical=True)
            if self._scratch is None or self._scratch.width != width:
                self._scratch = keep_glyphs(RendererAgg(width, height, self.fig.dpi))
            self._scratch.clear()
            if artist.get_visible():
                artist.draw(self._scratch)
            rgba = np.asarray(self._scratch.buffer_rgba())
            rows, cols = np.nonzero(rgba[..., 3])
            if rows.size == 0:
                box, rgb, alpha = (0, 0, 0, 0), np.zeros((0, 0, 3)), np.zeros((0, 0, 1))
            else:
                box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
                patch = rgba[box[0] : box[1], box[2] : box[3]].astype(np.float32)
                rgb, alpha = patch[..., :3], patch[..., 3:] / 255.0
            if len(layers) >= LABEL_LAYERS:
                layers.pop(next(iter(layers)))
            layers[key] = (box, rgb, alpha)
        return layers[key]

    @staticmethod
    def encode(rgb: np.ndarray) -> bytes:
        """PNG bytes of RGB pixels (fmlib.png: no row-filter search, zlib's fastest level)."""
        return png_bytes(rgb)

    def png(self) -> bytes:
        """The current figure as PNG bytes, redrawing only the dynamic artists."""
        return self.encode(self.raster())

    def _repr_png_(self) -> bytes:
        return self.png()


def _text_key(text: Text) -> tuple | None:
    """Everything that decides how a Text looks and where it lands (None: a box or path
    effects, which the key does not follow)."""
    if text.get_bbox_patch() is not None or text.get_path_effects():
        return None
    place = tuple(text.get_transform().transform(text.get_unitless_position()).round(3))
    return (
        text.get_text(),
        text.get_visible(),
        place,
        text.get_fontproperties(),
        to_rgba_array(text.get_color()).tobytes(),
        text.get_alpha(),
        text.get_rotation(),
        text.get_horizontalalignment(),
        text.get_verticalalignment(),
        text.get_multialignment() if hasattr(text, "get_multialignment") else None,
        text.get_linespacing(),
        text.get_usetex(),
        text.get_antialiased(),
    )


_HANDLE_LOOK = (
    "get_visible",
    "get_color",
    "get_facecolor",
    "get_edgecolor",
    "get_linestyle",
    "get_linewidth",
    "get_marker",
    "get_markersize",
    "get_alpha",
    "get_sizes",
)


def _label_key(artist: Artist) -> tuple | None:
    """The look of a Text or of a Legend at a fixed place (its texts and its handles), or None
    for any other artist."""
    if type(artist) is Text:
        return _text_key(artist)
    if not isinstance(artist, Legend) or artist._loc in (0, "best"):  # "best" follows the data
        return None
    texts = tuple(_text_key(t) for t in artist.get_texts())
    if None in texts:
        return None
    handles = tuple(
        tuple(
            repr(np.asarray(getattr(h, name)()).tolist())
            for name in _HANDLE_LOOK
            if hasattr(h, name)
        )
        for h in artist.legend_handles
        if h is not None
    )
    frame = artist.get_frame()
    return (
        "legend",
        artist.get_visible(),
        texts,
        handles,
        frame.get_visible(),
        to_rgba_array(frame.get_facecolor()).tobytes(),
    )
