"""docs/API.md is what tools/api_doc.py generates from the docstrings (run `make api`), and
it covers every public module of fmlib."""

from __future__ import annotations

import importlib.util
import pkgutil
from pathlib import Path

import fmlib

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("api_doc", ROOT / "tools" / "api_doc.py")
api_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api_doc)


def test_api_md_is_generated_from_the_docstrings():
    generated = api_doc.generate()
    current = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    assert current == generated, "docs/API.md is out of date: run `make api`"


def test_every_public_module_has_a_section():
    walked = {"fmlib"} | {
        m.name
        for m in pkgutil.walk_packages(fmlib.__path__, "fmlib.")
        if not any(part.startswith("_") for part in m.name.split("."))
    }
    walked -= api_doc.SKIP
    documented = {name for name, _ in api_doc.public_modules()}
    assert documented == walked
    text = api_doc.generate()
    for name in sorted(walked):
        assert f"## `{name}`" in text, name
    for name in ("fmlib.losses", "fmlib.exercises", "fmlib.marginal", "fmlib.checks"):
        assert name in documented


def test_a_changed_docstring_makes_the_file_stale(tmp_path, monkeypatch):
    """The comparison can fail: one word changed in one docstring changes the output."""
    copy = tmp_path / "fmlib"
    for path in api_doc.PACKAGE.rglob("*.py"):
        target = copy / path.relative_to(api_doc.PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    before = api_doc.generate()
    marginal = copy / "marginal.py"
    marginal.write_text(
        marginal.read_text(encoding="utf-8").replace("Exact marginal", "Approximate marginal", 1),
        encoding="utf-8",
    )
    monkeypatch.setattr(api_doc, "ROOT", tmp_path)
    monkeypatch.setattr(api_doc, "PACKAGE", copy)
    after = api_doc.generate()
    assert after != before and "Approximate marginal" in after
