"""Build the course as a static site in build/site/: `make site` (no kernel, no network).

    python tools/build_site.py [--out build/site]

Pages: every notebook of notebooks/ (and of student/ when it exists) converted by nbconvert
from its stored outputs (nothing is executed), with a navigation bar, local MathJax (from the
jupyter-server-mathjax package) and no script or style from another host. The page template,
its CSS and the panels' script are files in tools/site/; a student page is the same template
with prefix "../" (where the shared files are).

Sliders without a kernel: each notebook's widget panels (the entries of fmlib.figures.REGISTRY
whose notebook it is, in the order of its `widgets.panel(` cells) are rebuilt as HTML range
inputs over frames pre-rendered here by the same LiveFigure views the notebook uses, on a grid
of each control's own values (so every readout is exactly a drawn value). Moving a control
swaps the picture; a control the view reports in `inactive` at a frame is disabled there, with
its reason. The grid is each control's options, thinned evenly until the product is at most
the entry's site_frames: all of a dropdown's options, then as many values of t, steps and
sigma_min as fit (see `grid`). Frames are WebP.

Why nbconvert and not Jupyter Book: the pages are the notebooks as stored, plus a navigation
bar and the panels; nbconvert is already in the course's environment, builds offline in
seconds per page, and its template is easy to strip of every CDN reference. Jupyter Book 1
would add Sphinx and ~40 packages for the same pages.
"""

from __future__ import annotations

import argparse
import html
import io
import itertools
import re
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import jinja2  # noqa: E402
import jupyter_server_mathjax  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from nbconvert import HTMLExporter  # noqa: E402

from fmlib import figures, plots, widgets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "site"  # page template, CSS, panel script
MAX_FRAMES = figures.SITE_FRAMES  # per panel: ~25 KB each, so 12 panels stay near 30 MB
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
_JINJA = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)


# MathJax 2.7 as jupyter-server-mathjax ships it (TeX and MathML input, HTML-CSS output with
# its STIX web fonts): about 6 MB once the SVG output and languages but English are left out.
def _mathjax_skip(folder: str, names: list[str]) -> list[str]:
    if Path(folder).name == "localization":
        return [n for n in names if n != "en"]
    return [n for n in names if n == "SVG"]


@dataclass
class Axis:
    """One control on the static page: its name, label, drawn values and their readouts."""

    name: str
    description: str
    values: list
    labels: list[str]
    dropdown: bool
    start: int = 0  # the index of the notebook's own value: the page opens on it


def _options(control) -> list:
    if isinstance(control, ipywidgets.SelectionSlider | ipywidgets.Dropdown):
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    if isinstance(control, ipywidgets.IntSlider):
        return list(range(control.min, control.max + 1))
    n = int(round((control.max - control.min) / control.step)) + 1
    return [round(control.min + k * control.step, 10) for k in range(n)]


def _thin(values: list, n: int, keep=None) -> list:
    """n values spread evenly over `values`, first and last included, with `keep` replacing
    its nearest neighbour (so the page can open on the notebook's value)."""
    if n >= len(values):
        return list(values)
    idx = np.linspace(0, len(values) - 1, n).round().astype(int).tolist()
    if keep in values and values.index(keep) not in idx:
        k = values.index(keep)
        idx[int(np.argmin([abs(i - k) for i in idx]))] = k
    return [values[i] for i in sorted(set(idx))]


def grid(controls: dict, max_frames: int) -> list[Axis]:
    """Each control's own values, thinned (largest first, t last) until the product fits
    max_frames.

    Dropdowns keep every option; a control keeps its default value, so the page opens on the
    notebook's picture."""
    full = {name: _options(c) for name, c in controls.items()}
    sizes = {name: len(v) for name, v in full.items()}
    fixed = {n for n, c in controls.items() if isinstance(c, ipywidgets.Dropdown)}
    sizes = {n: s if n in fixed else min(s, 21 if n == "t" else 11) for n, s in sizes.items()}
    while np.prod(list(sizes.values())) > max_frames:
        free = [n for n in sizes if n not in fixed and sizes[n] > 2]
        if not free:
            break
        others = [n for n in free if n != "t"]  # t plays: thinned only when the others are at 2
        largest = max(others, key=sizes.get) if others else "t"
        sizes[largest] -= 1
    axes = []
    for name, control in controls.items():
        values = _thin(full[name], sizes[name], keep=control.value)
        labels = []
        for v in values:
            control.value = v
            labels.append(widgets.readout(control))
        axes.append(Axis(name, control.description or name, values, labels, name in fixed))
    return axes


@dataclass
class Frames:
    """One panel's pre-rendered frames: where they are (folder under frames/), its axes, and
    per frame index the reasons shown and the axes disabled (the view's `inactive`)."""

    folder: str
    axes: list[Axis]
    reasons: dict[int, str]
    disabled: dict[int, list[int]]
    note: str


def render_frames(entry: figures.Entry, out: Path) -> Frames:
    """Every grid frame of the entry's view as WebP in out/frames/<folder>/."""
    view = entry.make()
    controls = view.controls()
    defaults = {name: c.value for name, c in controls.items()}
    axes = grid(controls, entry.site_frames or MAX_FRAMES)
    folder = re.sub(r"[^A-Za-z0-9]+", "_", entry.name)
    (out / "frames" / folder).mkdir(parents=True, exist_ok=True)
    reasons, disabled = {}, {}
    for index, combo in enumerate(itertools.product(*[a.values for a in axes])):
        values = {**defaults, **{a.name: v for a, v in zip(axes, combo, strict=True)}}
        png = widgets.render_png(view, values)
        image = PIL.Image.open(io.BytesIO(png)).convert("RGB")
        image.save(out / "frames" / folder / f"{index}.webp", format="webp", quality=80, method=4)
        inactive = view.inactive(**values)
        if inactive:
            reasons[index] = "; ".join(
                f"{controls[n].description or n}: {r}" for n, r in inactive.items()
            )
            disabled[index] = [k for k, a in enumerate(axes) if a.name in inactive]
    for axis in axes:  # the page opens on the notebook's own values
        axis.start = axis.values.index(defaults[axis.name])
    return Frames(folder, axes, reasons, disabled, view.NOTE or "")


def panel_html(frames: Frames, prefix: str = "") -> str:
    """The panel's HTML on a page that lies `prefix` below the site's root ("" or "../")."""
    return _JINJA.get_template("panel.html.j2").render(
        base=f"{prefix}frames/{frames.folder}/",
        shape=[len(a.values) for a in frames.axes],
        reasons=frames.reasons,
        disabled=frames.disabled,
        axes=frames.axes,
        note=frames.note,
        slug=frames.folder,
    )


def site_entries(slug: str) -> list[figures.Entry]:
    """The registry's panels shown on notebook `slug`'s page, in the order of its cells."""
    return [e for e in figures.REGISTRY if e.notebook == slug and e.site_frames is not None]


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return "Untitled"


def _exporter() -> HTMLExporter:
    return HTMLExporter(template_name="site", extra_template_basedirs=[str(TEMPLATES.parent)])


def _nav(pages: list[tuple[str, str]], k: int, prefix: str, student: bool, editions: bool) -> str:
    links = [f'<a href="{prefix}index.html">Course home</a>']
    if k > 0:
        links.append(f'<a href="{pages[k - 1][0]}.html">← {html.escape(pages[k - 1][1])}</a>')
    if k + 1 < len(pages):
        links.append(f'<a href="{pages[k + 1][0]}.html">{html.escape(pages[k + 1][1])} →</a>')
    if editions:
        other = f"{prefix}{pages[k][0]}.html" if student else f"student/{pages[k][0]}.html"
        links.append(f'<a href="{other}">{"instructor" if student else "student"} edition</a>')
    return f'<nav class="fm-nav">{"".join(links)}</nav>'


def _page(exporter: HTMLExporter, nb, nav: str, panels: list[Frames], prefix: str) -> str:
    """One notebook's page; `prefix` ("" or "../") is where the site's root lies from it."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)  # no widget state: the panels are kernel-free
    htmls = [panel_html(p, prefix) for p in panels]
    k = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "widgets.panel(" in cell.source and k < len(htmls):
            cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": htmls[k]})]
            k += 1
        elif cell.cell_type == "markdown":
            # the badge's image lives on another host: a text link instead; chapter links
            # point at the chapters' pages
            cell.source = re.sub(
                r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)", r"[Open in Colab](\1)", cell.source
            )
            cell.source = re.sub(r"\]\((\d\d_[\w-]+)\.ipynb", r"](\1.html", cell.source)
    exporter.mathjax_url = prefix + MATHJAX_URL
    site = {"prefix": prefix, "nav": nav, "extra": "".join(htmls[k:])}  # panels without a cell
    body, _ = exporter.from_notebook_node(nb, resources={"fmsite": site})
    return body


def _copy_static(out: Path) -> None:
    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(src, out / "mathjax", ignore=_mathjax_skip)
    for name in ("site.css", "panel.js"):
        shutil.copy(TEMPLATES / name, out / name)


def build(out: Path, max_frames: int | None = None) -> dict:
    """Build the site into `out` (max_frames: at most this many frames per panel, else each
    entry's site_frames); returns a summary (pages, frames, seconds, megabytes)."""
    start = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _copy_static(out)
    plots.use_style()
    exporter = _exporter()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    student_dir = ROOT / "student"
    has_student = student_dir.exists() and any(student_dir.glob("*.ipynb"))
    pages = [(p.stem, _title(nbformat.read(p, as_version=4))) for p in notebooks]
    frames, panels = 0, {}
    for slug, _ in pages:
        panels[slug] = []
        for entry in site_entries(slug):
            if max_frames is not None:
                entry = replace(entry, site_frames=min(entry.site_frames, max_frames))
            panels[slug].append(render_frames(entry, out))
            frames += int(np.prod([len(a.values) for a in panels[slug][-1].axes]))
    for k, (slug, _) in enumerate(pages):
        nb = nbformat.read(ROOT / "notebooks" / f"{slug}.ipynb", as_version=4)
        nav = _nav(pages, k, "", student=False, editions=has_student)
        (out / f"{slug}.html").write_text(_page(exporter, nb, nav, panels[slug], ""))
        if has_student and (student_dir / f"{slug}.ipynb").exists():
            (out / "student").mkdir(exist_ok=True)
            snb = nbformat.read(student_dir / f"{slug}.ipynb", as_version=4)
            snav = _nav(pages, k, "../", student=True, editions=True)
            page = _page(exporter, snb, snav, panels[slug], "../")
            (out / "student" / f"{slug}.html").write_text(page)
    home = _JINJA.get_template("home.html.j2").render(pages=pages, student=has_student)
    (out / "index.html").write_text(home)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    seconds = round(time.perf_counter() - start, 1)
    n_pages = len(pages) * (2 if has_student else 1) + 1
    return {"pages": n_pages, "frames": frames, "seconds": seconds, "MB": round(size / 2**20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--frames", type=int, default=None, help="most frames per panel")
    args = parser.parse_args()
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    summary = build(args.out, args.frames)
    print(f"site in {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
