"""fmlib.figures.REGISTRY: one entry per widget panel. A new panel is two places, its view class
and its entry; from those the notebook's panel, the benchmark, the static site and the static
picture (`View.draw`) all work, which the first test shows with a trivial view."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from fmlib import figures, plots, widgets

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_site = _load("build_site", ROOT / "tools" / "build_site.py")
bench = _load("bench_widgets", ROOT / "benchmarks" / "widgets.py")


# --- place 1 of 2: the view --------------------------------------------------------------------
class Slope(plots.LiveFigure):
    """A line of slope a; a second control, b, has no effect when a = 0."""

    def build(self) -> Figure:
        fig, (ax,) = plots.new_axes(1)
        (self.line,) = ax.plot([], [])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 2)
        self.title = ax.set_title("a = 0.00, b = 0.00")
        self.dynamic(self.line, self.title)
        return fig

    def update(self, a: float = 0.5, b: float = 0.0) -> None:
        if not 0 <= a <= 1:
            raise ValueError(f"a must be in [0, 1], got {a}")
        self.line.set_data([0, 1], [b * (a > 0), a + b * (a > 0)])
        self.title.set_text(f"a = {a:.2f}, b = {b:.2f}")

    def controls(self) -> dict:
        return {
            "a": widgets.t_slider(0.5, options=(0.0, 0.25, 0.5, 0.75, 1.0)),
            "b": widgets.sigma_min_slider(0.0, options=(0.0, 0.5)),
        }

    def inactive(self, a: float = 0.5, b: float = 0.0) -> dict[str, str]:
        return {"b": "no effect when a = 0"} if a == 0 else {}


# --- place 2 of 2: its entry ---------------------------------------------------------------------
ENTRY = figures.Entry(f"{__name__}.Slope", notebook="99_slope", values={"a": 0.25}, site_frames=8)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(figures, "REGISTRY", [*figures.REGISTRY, ENTRY])
    return ENTRY


def test_a_new_panel_is_its_view_class_and_one_registry_entry(registered, tmp_path):
    # the notebook: `widgets.panel(view)`, redrawn live, inactive controls disabled
    panel = widgets.panel(registered.make())
    panel.set(a=0.75)
    panel.wait()
    assert panel.picture == widgets.render_png(Slope(), {"a": 0.75, "b": 0.0})
    panel.set(a=0.0)
    panel.wait()
    assert panel.controls["b"].disabled and "no effect when a = 0" in panel.status.value
    # the static picture: the class's draw, on a pyplot figure
    fig = Slope.draw(a=0.5, b=0.5)
    assert fig.number in plt.get_fignums() and fig.axes[0].get_title() == "a = 0.50, b = 0.50"
    plt.close(fig)
    # the benchmark: one row, from the entry's values
    row, _ = bench.table_row(registered, points=3)
    assert row.startswith(f"| {registered.name} | ")
    assert [e.name for e in figures.REGISTRY].count(registered.name) == 1
    # the tests' list of views
    assert (registered.name, {"a": 0.25}) in [(n, v) for n, _, v in figures.all_views()]
    # the static site: its frames, on its notebook's page
    assert build_site.site_entries("99_slope") == [registered]
    frames = build_site.render_frames(registered, tmp_path)
    assert sorted(p.name for p in (tmp_path / "frames" / frames.folder).iterdir()) == sorted(
        f"{k}.webp" for k in range(8)
    )  # 4 values of a (thinned from 5) x 2 of b fit 8 frames
    html = build_site.panel_html(frames)
    assert 'class="fm-panel"' in html and f'data-base="frames/{frames.folder}/"' in html


def test_the_site_disables_what_the_view_reports_inactive(registered, tmp_path):
    frames = build_site.render_frames(registered, tmp_path)
    a, b = frames.axes
    assert (a.name, b.name) == ("a", "b")
    for index in range(len(a.values) * len(b.values)):
        value_a = a.values[index // len(b.values)]
        expected = [1] if value_a == 0.0 else []  # b (axis 1) has no effect when a = 0
        assert frames.disabled.get(index, []) == expected, index
        assert ("no effect when a = 0" in frames.reasons.get(index, "")) == (value_a == 0.0)
    html = build_site.panel_html(frames, prefix="../")
    disabled = json.loads(re.search(r"data-disabled='([^']*)'", html).group(1))
    assert disabled == {str(k): v for k, v in frames.disabled.items()} and disabled
    assert 'data-base="../frames/' in html  # a student page reaches the shared frames


@pytest.mark.parametrize("entry", figures.REGISTRY, ids=[e.name for e in figures.REGISTRY])
def test_every_entry_names_a_view_and_values_its_controls_offer(entry):
    if True:
        view = entry.make()
        controls = view.controls()
        for name, value in entry.values.items():
            assert name in controls, f"{entry.name}: {name} is not a control"
            control = controls[name]
            control.value = value  # a value the control does not offer raises here
            assert control.value == value, f"{entry.name}: {name} = {value} not offered"


def test_every_notebook_panel_has_its_entry_in_order():
    """Each notebook's `widgets.panel(` cells and the registry's entries for it agree."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        count = sum("widgets.panel(" in "".join(c["source"]) for c in cells)
        shown = [e for e in figures.REGISTRY if e.notebook == path.stem]
        assert len(shown) == count, f"{path.stem}: {count} panel cells, entries {shown}"
    names = [e.name for e in figures.REGISTRY]
    assert len(set(names)) == len(names), "two entries share a name"


def test_entries_check_their_arguments():
    with pytest.raises(ValueError, match="view must be 'module.Class'"):
        figures.Entry("Slope")
    with pytest.raises(ValueError, match="site_frames must be >= 1 or None, got 0"):
        figures.Entry("start.ConditionalPath", site_frames=0)
    with pytest.raises(ValueError, match="view must make a LiveFigure, got dict"):
        figures.Entry("builtins.dict").make()
