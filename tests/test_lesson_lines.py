"""The lesson's lines, as written in notebooks 00-02, equal fmlib's tested copies.

Each notebook writes the maths of its chapter in a code cell; fmlib keeps the copy the
rest of the course reuses. These tests execute the notebook's own definition (read from
the .ipynb) and compare it with fmlib's, so that the two cannot drift apart.
"""

import ast
import json
import math
from pathlib import Path

import pytest
import torch

from fmlib.divergence import jacobian
from fmlib.flows import CouplingLayer, GaussianFlow, log_abs_det
from fmlib.paths import OTPath, VPPath
from fmlib.solvers import euler_step, midpoint_step, rk4_step

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
D64 = torch.float64


def notebook_function(notebook: str, name: str):
    """The function `name` as defined in a code cell of notebooks/<notebook>: only the
    `def` statements of that cell run, in a namespace holding torch and math."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (source,) = [src for src in sources if f"def {name}(" in src]
    module = ast.parse(source)
    module.body = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    namespace = {"torch": torch, "math": math}
    exec(compile(module, f"{notebook}:{name}", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("flip", [False, True])
def test_coupling_layer_equals_notebook_01(flip):
    """Same x and same log-det s(z_a) as notebook 01's `coupling_forward`, which is itself
    log|det| of the autograd Jacobian; the inverse undoes it."""
    coupling_forward = notebook_function("01_change_of_variables.ipynb", "coupling_forward")
    scale, shift = (lambda a: 0.7 * torch.tanh(a) - 0.1), (lambda a: a**2 - 0.5)
    z = torch.randn(300, 2, generator=torch.Generator().manual_seed(5), dtype=D64)
    x_nb, log_det_nb = coupling_forward(z, scale, shift, flip)
    layer = CouplingLayer(scale, shift, flip)
    x_lib, log_det_lib = layer.forward(z)
    assert torch.equal(x_nb, x_lib) and torch.equal(log_det_nb, log_det_lib)
    jac = jacobian(lambda y, t: coupling_forward(y, scale, shift, flip)[0], z, 0.0)
    assert (log_abs_det(jac) - log_det_nb).abs().max() < 1e-12
    assert torch.allclose(layer.inverse(x_lib), z, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name, library", [("euler", euler_step), ("midpoint", midpoint_step),
                                           ("rk4", rk4_step)])  # fmt: skip
def test_solver_steps_equal_notebook_02(name, library):
    """fmlib.solvers' steps are notebook 02's `euler`, `midpoint`, `rk4`, step for step."""
    step = notebook_function("02_continuous_normalizing_flows.ipynb", name)
    g = GaussianFlow(torch.tensor([2.0, 1.0], dtype=D64), 0.3, omega=2.0)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
    for t, h in [(0.0, 0.1), (0.37, 0.05), (0.9, 0.1), (1.0, -0.25)]:
        tt = torch.full((100,), t, dtype=D64)
        assert torch.allclose(step(g, x, tt, h), library(g, x, tt, h), atol=1e-14, rtol=0)


@pytest.mark.parametrize("path", [OTPath(0.0), OTPath(0.1), VPPath()], ids=["ot0", "ot01", "vp"])
def test_gaussian_conditional_field_equals_notebook_00(path):
    """GaussianPath.u_t (computed through sigma_t sigma_t' / sigma_t^2) is notebook 00's
    derived u_t(x | x1) = sigma_t'/sigma_t (x - mu_t) + mu_t' wherever sigma_t > 0."""
    u_gaussian = notebook_function("00_start_here.ipynb", "u_gaussian")
    gen = torch.Generator().manual_seed(2)
    x = 2 * torch.randn(200, 2, generator=gen, dtype=D64)
    x1 = torch.randn(200, 2, generator=gen, dtype=D64)
    for t in (0.05, 0.3, 0.7, 0.95):
        t = torch.tensor(t, dtype=D64)
        assert torch.allclose(u_gaussian(path, x, x1, t), path.u_t(x, x1, t), atol=1e-10)
