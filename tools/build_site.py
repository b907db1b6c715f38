"""Build the course as a static site in build/site/: `make site` (no kernel, no network).

    python tools/build_site.py [--out build/site] [--frames 96]

Pages: every notebook of notebooks/ (and of student/ when it exists) converted by nbconvert
from its stored outputs (nothing is executed), with a navigation bar, local MathJax (from the
jupyter-server-mathjax package) and no script or style from another host.

Sliders without a kernel: each notebook's widget panels (listed in PANELS) are rebuilt as HTML
range inputs over frames pre-rendered here by the same LiveFigure views the notebook uses, on
a grid of each control's own values (so every readout is exactly a drawn value). Moving a
control swaps the picture. The grid is each control's options, thinned evenly until the
product is at most --frames per panel: all of a dropdown's options, then as many values of
t, steps and sigma_min as fit (see `grid`). Frames are WebP.

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
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import jupyter_server_mathjax  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from nbconvert import HTMLExporter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fmlib import plots, widgets  # noqa: E402
from fmlib.figures import all_views  # noqa: E402

MAX_FRAMES = 96  # per panel: ~25 KB each, so 12 panels stay near 30 MB
# The widget views each notebook's panels show, in the order of its `widgets.panel(` cells.
PANELS: dict[str, list[str]] = {
    "00_start_here": ["start.ConditionalPath"],
    "01_change_of_variables": ["change_of_variables.ResidualFlow"],
    "02_continuous_normalizing_flows": ["cnf.ODEDensity"],
    "03_continuity_equation": ["continuity.Continuity"],
    "04_marginalization_trick": ["marginalization.Marginalization"],
    "05_cfm_training": ["training.FlowAtlasView"],
    "06_sampling": ["sampling.SamplesView"],
    "07_paths_compared": ["paths_compared.PathsCompared"],
    "08_couplings": ["couplings."],
    "09_guidance": ["guidance."],
    "10_discrete_flow_matching": ["discrete."],
}


# MathJax 2.7 as jupyter-server-mathjax ships it (TeX and MathML input, HTML-CSS output with
# its STIX web fonts): about 6 MB once the SVG output and languages but English are left out.
def _mathjax_skip(folder: str, names: list[str]) -> list[str]:
    if Path(folder).name == "localization":
        return [n for n in names if n != "en"]
    return [n for n in names if n == "SVG"]


MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# The package ships only HTML-CSS output with STIX web fonts: say so before MathJax starts (else
# Chromium's copy of each formula as hidden MathML asks for TeX's web fonts, which are absent);
# its blank measuring font is local() instead of about:blank, which Chromium refuses loudly.
MATHJAX_FONTS = (
    '<script type="text/x-mathjax-config">MathJax.Hub.Config({MMLorHTML: {prefer: "HTML"}, '
    "menuSettings: {assistiveMML: false}, AssistiveMML: {disabled: true}, "
    '"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null, '
    'styles: {"@font-face": {"font-family": "MathJax_Blank", '
    "src: \"local('MathJax_Blank')\"}}}"
    "});</script>"
)
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock html_head_js_requirejs %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
"""
STYLE = """
.fm-controls input:disabled, .fm-controls select:disabled { opacity: 0.4; }
.fm-nav { position: sticky; top: 0; z-index: 10; background: #f7f7f7; border-bottom: 1px solid
  #ddd; padding: 6px 16px; font: 14px sans-serif; display: flex; gap: 18px; }
.fm-nav a { text-decoration: none; }
.fm-panel { border: 1px solid #ccc; border-radius: 4px; padding: 8px; margin: 8px 0; }
.fm-controls { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center;
  font: 13px sans-serif; margin-bottom: 6px; }
.fm-controls output { display: inline-block; min-width: 2.5em; font-family: monospace; }
.fm-note { font: italic 13px sans-serif; color: #444; margin: 2px 0; }
.fm-panel img { max-width: 100%; }
"""
SCRIPT = """
document.querySelectorAll(".fm-panel").forEach((panel) => {
  const shape = JSON.parse(panel.dataset.shape), base = panel.dataset.base;
  const reasons = JSON.parse(panel.dataset.reasons);
  const disabled = JSON.parse(panel.dataset.disabled);
  const inputs = [...panel.querySelectorAll("[data-axis]")];
  const img = panel.querySelector("img"), why = panel.querySelector(".fm-why");
  const show = () => {
    let index = 0;
    inputs.forEach((el, k) => { index = index * shape[k] + Number(el.value);
      if (el.type === "range") el.nextElementSibling.textContent =
        JSON.parse(el.dataset.labels)[Number(el.value)]; });
    img.src = `${base}${index}.webp`;
    why.textContent = reasons[index] || "";
    inputs.forEach((el, k) => { el.disabled = (disabled[index] || []).includes(k); });
  };
  inputs.forEach((el) => el.addEventListener("input", show));
  const play = panel.querySelector(".fm-play");
  if (play) {
    const t = panel.querySelector("[data-name='t']");
    let timer = null;
    play.addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "▶ play t"; return; }
      if (Number(t.value) === Number(t.max)) { t.value = 0; show(); }
      play.textContent = "⏸ pause";
      const stop = () => { clearInterval(timer); timer = null; play.textContent = "▶ play t"; };
      timer = setInterval(() => {
        t.value = Number(t.value) + 1;
        show();
        if (Number(t.value) >= Number(t.max)) stop();
      }, 100);  // 10 pictures a second (the course's bar: >= 8 while t plays)
    });
  }
  show();
  // Fetch every frame once the page is idle, so that later moves swap instantly.
  const total = shape.reduce((a, b) => a * b, 1);
  setTimeout(() => { for (let i = 0; i < total; i++) new Image().src = `${base}${i}.webp`; }, 500);
});
"""


@dataclass
class Axis:
    """One control on the static page: its name, label, drawn values and their readouts."""

    name: str
    description: str
    values: list
    labels: list[str]
    dropdown: bool


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


def render_frames(make_view, folder: Path, max_frames: int) -> tuple[list[Axis], dict, dict, str]:
    """Every grid frame of one view as WebP in `folder`: (axes, {index: reasons},
    {index: [axes with no effect there]}, note)."""
    view = make_view()
    controls = view.controls()
    defaults = {name: c.value for name, c in controls.items()}
    axes = grid(controls, max_frames)
    folder.mkdir(parents=True, exist_ok=True)
    reasons, disabled = {}, {}
    for index, combo in enumerate(itertools.product(*[a.values for a in axes])):
        values = {**defaults, **{a.name: v for a, v in zip(axes, combo, strict=True)}}
        png = widgets.render_png(view, values)
        image = PIL.Image.open(io.BytesIO(png)).convert("RGB")
        image.save(folder / f"{index}.webp", format="webp", quality=80, method=4)
        inactive = view.inactive(**values)
        if inactive:
            reasons[index] = "; ".join(
                f"{controls[n].description}: {r}" for n, r in inactive.items()
            )
    for axis in axes:  # the page opens on the notebook's own values
        axis.start = axis.values.index(defaults[axis.name])
    return axes, reasons, disabled, view.NOTE or ""


def panel_html(slug: str, axes: list[Axis], reasons: dict, disabled: dict, note: str) -> str:
    parts = []
    if any(a.name == "t" for a in axes):
        parts.append('<button class="fm-play" type="button">▶ play t</button>')
    for k, a in enumerate(axes):
        label = html.escape(a.description)
        if a.dropdown:
            options = "".join(
                f'<option value="{i}"{" selected" * (i == a.start)}>{html.escape(s)}</option>'
                for i, s in enumerate(a.labels)
            )
            parts.append(f'<label>{label} <select data-axis="{k}" data-name="{a.name}">'
                         f"{options}</select></label>")  # fmt: skip
        else:
            labels = html.escape(json.dumps(a.labels), quote=True)
            parts.append(
                f'<label>{label} <input type="range" data-axis="{k}" data-name="{a.name}" '
                f'min="0" max="{len(a.values) - 1}" step="1" value="{a.start}" '
                f'data-labels="{labels}"><output>{html.escape(a.labels[a.start])}</output></label>'
            )
    shape = json.dumps([len(a.values) for a in axes])
    note_html = f'<div class="fm-note">{html.escape(note)}</div>' if note else ""
    return (
        f'<div class="fm-panel" data-base="frames/{slug}/" data-shape="{shape}" '
        f"data-reasons='{html.escape(json.dumps(reasons), quote=True)}' "
        f"data-disabled='{json.dumps(disabled)}'>"
        f'<div class="fm-controls">{"".join(parts)}</div>{note_html}'
        f'<div class="fm-note fm-why"></div><img alt="{slug} (pre-rendered)" src="">'
        f"<div class='fm-note'>Pre-rendered frames: each control offers the values drawn "
        f"here; open the notebook for every value.</div></div>"
    )


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return "Untitled"


def _exporter(template_dir: Path) -> HTMLExporter:
    (template_dir / "fmsite").mkdir(parents=True, exist_ok=True)
    (template_dir / "fmsite" / "index.html.j2").write_text(TEMPLATE)
    (template_dir / "fmsite" / "conf.json").write_text('{"base_template": "lab"}')
    exporter = HTMLExporter(
        template_name="fmsite", extra_template_basedirs=[str(template_dir)],
        mathjax_url=MATHJAX_URL,
    )  # fmt: skip
    return exporter


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


def _page(exporter, nb, nav: str, panels: list[str]) -> str:
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)  # no widget state: panels are replaced below
    marker = "FMSITE-PANEL-{}"
    k = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "widgets.panel(" in cell.source and k < len(panels):
            cell.outputs = [nbformat.v4.new_output(
                "display_data", data={"text/html": f"<div>{marker.format(k)}</div>"})]  # fmt: skip
            k += 1
    for cell in nb.cells:  # the badge's image lives on another host: a text link instead
        if cell.cell_type == "markdown":
            cell.source = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)",
                                 r"[Open in Colab](\1)", cell.source)  # fmt: skip
    body, _ = exporter.from_notebook_node(nb)
    body = re.sub(r'href="(\d\d_[\w-]+)\.ipynb', r'href="\1.html', body)  # chapter links
    for i, panel in enumerate(panels):
        body = body.replace(marker.format(i), panel)
    extra = "".join(panels[k:])  # panels without a panel cell go at the end
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)
    head = f'<link rel="icon" href="data:,"><style>{STYLE}</style>'  # no favicon request
    body = body.replace(
        f'<script src="{MATHJAX_URL}">', MATHJAX_FONTS + f'<script src="{MATHJAX_URL}">', 1
    )
    tail = f"{extra}<script>{SCRIPT}</script>"
    return body.replace("</head>", head + "</head>", 1).replace("</body>", tail + "</body>", 1)


def _copy_mathjax(out: Path) -> None:
    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(src, out / "mathjax", ignore=_mathjax_skip)


def _index(pages: list[tuple[str, str]], student: bool) -> str:
    rows = "".join(
        f'<li><a href="{slug}.html">{html.escape(title)}</a>'
        + (f' · <a href="student/{slug}.html">student edition</a>' if student else "")
        + "</li>"
        for slug, title in pages
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Flow Matching course</title>"
        "<link rel='icon' href='data:,'>"
        f"<style>{STYLE} body {{ font: 16px sans-serif; max-width: 46em; margin: 2em auto; }}"
        "</style></head><body><h1>Flow Matching, taught by notebooks you can play with</h1>"
        "<p>The course as static pages: every figure, every check and its result as stored in "
        "the notebooks; each widget panel works without Python (pre-rendered frames). To run "
        "the code, open the notebooks in JupyterLab (<code>make lab</code>) or on Colab.</p>"
        f"<ol start='0'>{rows}</ol></body></html>"
    )


def build(out: Path, max_frames: int) -> dict:
    """Build the site into `out`; returns a summary (pages, frames, seconds, megabytes)."""
    start = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _copy_mathjax(out)
    plots.use_style()
    views = {name: make for name, make, _ in all_views()}
    exporter = _exporter(out.parent / ".site-template")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    student_dir = ROOT / "student"
    has_student = student_dir.exists() and any(student_dir.glob("*.ipynb"))
    pages = [(p.stem, _title(nbformat.read(p, as_version=4))) for p in notebooks]
    frames, panels_by_page = 0, {}
    for slug, _ in pages:
        htmls = []
        for wanted in PANELS.get(slug, []):
            for name in [
                n for n in views if n == wanted or (wanted.endswith(".") and n.startswith(wanted))
            ][:1]:
                folder = re.sub(r"[^A-Za-z0-9]+", "_", name)
                axes, reasons, disabled, note = render_frames(
                    views[name], out / "frames" / folder, max_frames
                )
                frames += int(np.prod([len(a.values) for a in axes]))
                htmls.append(panel_html(folder, axes, reasons, disabled, note))
        panels_by_page[slug] = htmls
    for k, (slug, _) in enumerate(pages):
        nb = nbformat.read(ROOT / "notebooks" / f"{slug}.ipynb", as_version=4)
        nav = _nav(pages, k, "", student=False, editions=has_student)
        (out / f"{slug}.html").write_text(_page(exporter, nb, nav, panels_by_page[slug]))
        if has_student and (student_dir / f"{slug}.ipynb").exists():
            (out / "student").mkdir(exist_ok=True)
            snb = nbformat.read(student_dir / f"{slug}.ipynb", as_version=4)
            spanels = [
                p.replace('data-base="frames/', 'data-base="../frames/')
                for p in panels_by_page[slug]
            ]
            snav = _nav(pages, k, "../", student=True, editions=True)
            page = _page(exporter, snb, snav, spanels).replace('src="mathjax/', 'src="../mathjax/')
            (out / "student" / f"{slug}.html").write_text(page)
    (out / "index.html").write_text(_index(pages, has_student))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    seconds = round(time.perf_counter() - start, 1)
    n_pages = len(pages) * (2 if has_student else 1) + 1
    return {"pages": n_pages, "frames": frames, "seconds": seconds, "MB": round(size / 2**20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--frames", type=int, default=MAX_FRAMES, help="most frames per panel")
    args = parser.parse_args()
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    summary = build(args.out, args.frames)
    print(f"site in {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
