"""Colab: every notebook has its badge and set-up lines, made from pyproject's one URL; fmlib's
declared dependencies accept Colab's packages; the widgets work with ipywidgets 7.7.1."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
IPYWIDGETS7 = ROOT / ".venv" / "ipywidgets7"  # ipywidgets==7.7.1, installed by `make install`
_spec = importlib.util.spec_from_file_location("colab", ROOT / "tools" / "colab.py")
colab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab)


def test_every_notebook_has_its_badge_and_setup():
    assert colab.main(["--check"]) == 0, "run `python tools/colab.py`"
    import nbformat

    repo = colab.repository()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[0].source.startswith(colab.badge(repo, path.name)), path.name
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert first_code.source.startswith(colab.SETUP_START), path.name


def test_setup_lines_are_skipped_outside_colab():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result = shell.run_cell(colab.setup_lines(colab.repository()))
    assert result.success and "google.colab" not in sys.modules
    assert "/content/course" not in sys.path


def test_setup_installs_the_clone_as_a_normal_package():
    """On Colab the set-up pip-installs the clone itself, not editable (the installed wheel is
    what tests/test_wheel.py builds and smoke-tests outside the checkout) and with no sys.path
    edit, so fmlib is imported from site-packages in the running kernel."""
    lines = [line.strip() for line in colab.setup_lines(colab.repository()).splitlines()]
    clone = [line for line in lines if line.startswith("!git clone")]
    pip = [line for line in lines if line.startswith("%pip install")]
    assert len(clone) == 1 and clone[0].split()[-1] == colab.CLONE
    assert len(pip) == 1 and pip[0].split() == ["%pip", "install", "-q", colab.CLONE], pip
    assert not any("sys.path" in line or "-e " in line or "--editable" in line for line in lines)
    assert f"%cd {colab.CLONE}/notebooks" in lines


def test_bad_repository_url(monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nRepository = "http://x.org/a"\n')
    monkeypatch.setattr(colab, "ROOT", tmp_path)
    with pytest.raises(ValueError, match=r"Repository must be https://github.com/OWNER/NAME"):
        colab.repository()


def test_declared_dependencies_accept_colab_packages():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(r).name: Requirement(r) for r in meta["dependencies"]}
    colab_has = {"ipywidgets": "7.7.1", "torch": "2.6.0+cu124", "numpy": "2.0.2"}
    for name, version in colab_has.items():
        assert requirements[name].specifier.contains(version, prereleases=True), (name, version)
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name, req in requirements.items():  # the course machines' pins are accepted too
        if name in pins:
            assert req.specifier.contains(pins[name]), (name, pins[name])


SMOKE = r"""
import ipywidgets, nbformat
assert ipywidgets.__version__ == "7.7.1", ipywidgets.__version__
from IPython.core.interactiveshell import InteractiveShell
from fmlib import plots, widgets


class Line(plots.LiveFigure):
    def build(self):
        fig, (ax,) = plots.new_axes(1)
        (self.line,) = ax.plot([], [])
        self.dynamic(self.line)
        return fig

    def update(self, t=0.5, sigma_min=0.0):
        self.line.set_data([0, 1], [sigma_min, t])

    def controls(self):
        return {"t": widgets.t_slider(), "sigma_min": widgets.sigma_min_slider(options=(0.0, 0.1))}


box = widgets.panel(Line())
assert bytes(box.children[-1].value).startswith(b"\x89PNG")
play, t = box.children[0].children[:2]
assert isinstance(play, ipywidgets.Play) and t.index == 10
# Notebook 00's set-up cell, then its panel cell, as on Colab (its environment report checks
# the course machines' pins, which Colab does not have, so it is not run here).
nb = nbformat.read("notebooks/00_start_here.ipynb", as_version=4)
code = [c.source for c in nb.cells if c.cell_type == "code"]
panels = [s for s in code if "widgets.panel(" in s]
assert panels, "notebook 00 has no panel cell"
shell = InteractiveShell.instance()
for source in [code[0], panels[0]]:
    result = shell.run_cell(source)
    assert result.success, source[:300]
assert isinstance(result.result, ipywidgets.VBox), type(result.result)
print("ok")
"""


@pytest.mark.slow
def test_widgets_work_with_ipywidgets_7_7_1():
    assert IPYWIDGETS7.is_dir(), "ipywidgets 7.7.1 missing: run `make install`"
    env = {**os.environ, "PYTHONPATH": f"{IPYWIDGETS7}{os.pathsep}{ROOT}", "MPLBACKEND": "Agg"}
    env.pop("FMLIB_CHECK_FIGURES", None)  # its toy view is about widgets, not a course figure
    done = subprocess.run(
        [sys.executable, "-c", SMOKE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
