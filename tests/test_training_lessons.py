"""Notebook 05's lesson lines equal fmlib.training's tested copies.

The notebook writes the CFM loss line of its first loop (section 1) and the full training
loop `train_cfm` (section 2) in its own cells; fmlib.training keeps the copies the rest of
the course trains with (`cfm_loss`, `train`). These tests read the notebook's code from the
.ipynb and run it against fmlib's, so that the two cannot drift apart.
"""

import ast
import copy
import json
import math
from pathlib import Path

import pytest
import torch
from tqdm.auto import tqdm

from fmlib import data
from fmlib.paths import OTPath
from fmlib.training import Recipe, cfm_loss, sample_time, train

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_cfm_training.ipynb"


def _code_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _loss_expression() -> ast.expr:
    """The right-hand side of the first loop's line `loss = ...  # the CFM loss`."""
    lines = [
        line
        for cell in _code_cells()
        for line in cell.splitlines()
        if line.strip().startswith("loss = ") and line.rstrip().endswith("# the CFM loss")
    ]
    assert len(lines) == 1, lines
    (statement,) = ast.parse(lines[0].strip()).body
    return statement.value


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_the_notebook_loss_line_is_cfm_loss(sigma_min):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = Recipe().model()
    path = OTPath(sigma_min)
    x0, x1 = torch.randn(256, 2, generator=g), data.sample("checkerboard", 256, g)
    t = torch.rand(256, generator=g)
    namespace = {
        "model": model,
        "x_t": path.psi_t(x0, x1, t),
        "t": t,
        "target": path.target(x0, x1, t),
    }
    code = compile(ast.Expression(_loss_expression()), "05:loss line", "eval")
    with torch.no_grad():
        by_notebook = eval(code, namespace)  # the notebook's own line
        by_fmlib = cfm_loss(model, x0, x1, t, path)
    torch.testing.assert_close(by_notebook, by_fmlib, rtol=1e-6, atol=0)


def _notebook_train_cfm():
    """`train_cfm` as defined in notebook 05 (only the def runs), with the notebook's names."""
    (source,) = [cell for cell in _code_cells() if "def train_cfm(" in cell]
    module = ast.parse(source)
    module.body = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    namespace = {
        "copy": copy,
        "math": math,
        "torch": torch,
        "tqdm": tqdm,
        "data": data,
        "sample_time": sample_time,
        "path": OTPath(0.0),
    }
    exec(compile(module, "05:train_cfm", "exec"), namespace)
    return namespace["train_cfm"]


def test_the_notebook_loop_is_fmlib_train():
    """40 steps of the notebook's loop and of `train` from the same weights and seed end at
    the same EMA weights (the notebook's table was made with `train`)."""
    recipe = Recipe()
    torch.manual_seed(0)
    start = recipe.model()
    ema_here, losses = _notebook_train_cfm()(copy.deepcopy(start), 40)
    result = train(
        copy.deepcopy(start),
        lambda n, g: data.sample("checkerboard", n, g),
        OTPath(0.0),
        steps=40,
        generator=torch.Generator().manual_seed(0),
        progress=False,
        **recipe.train_kwargs(),
    )
    assert losses == result.losses
    for a, b in zip(ema_here.parameters(), result.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
