"""The notebooks' own format: unique cell ids, and the reproducibility policy's tags (README,
'For the next engineer'): a cell whose numbers vary with the CPU is not compared by nbval,
says so in its notebook, and leaves its asserts to run everywhere."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cell_ids_are_unique(path):
    ids = [c.get("id") for c in _cells(path)]
    assert len(ids) == len(set(ids)), f"duplicate cell ids in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_that_vary_with_the_cpu_are_tagged_and_announced(path):
    cells = _cells(path)
    varying = [c for c in cells if "varies-with-cpu" in c.get("metadata", {}).get("tags", [])]
    if not varying:
        return
    for cell in varying:
        tags = cell["metadata"]["tags"]
        assert "nbval-ignore-output" in tags, f"{path.name}: varies-with-cpu without the nbval tag"
        assert cell["cell_type"] == "code"
    prose = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code_text = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    words = re.sub(r"[\s*_]+", " ", prose + " " + code_text)  # line breaks, bold
    assert re.search(r"var(y|ies) with the CPU", words), (
        f"{path.name} tags cells varies-with-cpu but never tells the reader"
    )
