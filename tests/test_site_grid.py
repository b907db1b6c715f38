"""tools/build_site.py's frame grid: every readout a drawn value, t kept for Play."""

import importlib.util
import sys
from pathlib import Path

from fmlib import widgets

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
build_site = importlib.util.module_from_spec(_spec)
sys.modules["build_site"] = build_site  # its dataclasses look their module up
_spec.loader.exec_module(build_site)


def test_the_grid_fits_the_budget_and_thins_t_last():
    controls = {
        "sigma_min": widgets.sigma_min_slider(0.1, options=(0.0, 0.05, 0.1, 0.25)),
        "steps": widgets.steps_slider(8, options=(1, 2, 4, 8, 16, 32)),
        "t": widgets.t_slider(0.5),
        "path": widgets.choice("path", ("OT", "VP", "cosine"), "OT"),
    }
    axes = {a.name: a for a in build_site.grid(controls, max_frames=96)}
    sizes = {name: len(a.values) for name, a in axes.items()}
    assert sizes["path"] == 3 and sizes["sigma_min"] == sizes["steps"] == 2
    assert sizes["t"] == 96 // (3 * 2 * 2) == 8  # Play shows 8 values of t
    assert 0.1 in axes["sigma_min"].values and 8 in axes["steps"].values  # the notebook's own
    assert axes["t"].labels[0] == "0.00" and axes["t"].labels[-1] == "1.00"
    assert axes["steps"].labels == [str(v) for v in axes["steps"].values]  # readout = drawn


def test_a_small_grid_keeps_every_value():
    controls = {"t": widgets.t_slider(0.5), "steps": widgets.steps_slider(2, options=(1, 2, 4))}
    axes = build_site.grid(controls, max_frames=96)
    assert [len(a.values) for a in axes] == [21, 3]


def test_a_student_page_is_the_same_template_with_its_prefix():
    """Pages come from tools/site/index.html.j2; a student page (one folder down) gets prefix
    "../" for MathJax, the CSS, the panel script and the frames: no string replacement."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nNext: [chapter 1](01_change_of_variables.ipynb)"),
        nbformat.v4.new_code_cell("widgets.panel(view)"),
    ]
    axis = build_site.Axis("t", "t", [0.0, 1.0], ["0.00", "1.00"], dropdown=False)
    frames = build_site.Frames("demo", [axis], {1: "t: why"}, {1: [0]}, note="a note")
    exporter = build_site._exporter()
    for prefix in ("", "../"):
        page = build_site._page(exporter, nb, "<nav>NAV</nav>", [frames], prefix)
        assert f'<script src="{prefix}mathjax/MathJax.js' in page
        assert f'href="{prefix}site.css"' in page and f'src="{prefix}panel.js"' in page
        assert f'data-base="{prefix}frames/demo/"' in page and "<nav>NAV</nav>" in page
        assert 'href="01_change_of_variables.html"' in page
        assert "data-disabled='{\"1\": [0]}'" in page and "a note" in page
        assert page.index("text/x-mathjax-config") < page.index("MathJax.js")  # fonts first
