"""The lesson's lines in notebooks 00-04 equal the fmlib code the course reuses.

The notebooks write the maths of each chapter in their own cells and check it there against
independent quantities (closed forms, finite differences, Monte Carlo); that fmlib's copy is
the same code is a unit-test matter, checked here on points the notebooks do not use.
"""

import ast
import json
import math
from pathlib import Path

import torch

from fmlib.continuity import continuity_residual
from fmlib.flows import GaussianFlow
from fmlib.marginal import GaussianMixture, marginal_velocity, posterior
from fmlib.paths import OTPath

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
D64 = torch.float64


def notebook_function(notebook: str, name: str, names: dict | None = None):
    """The function `name` as defined in a code cell of notebooks/<notebook>: only the `def`
    statements of that cell run, with torch, math and `names` (the globals it reads)."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (source,) = [src for src in sources if f"def {name}(" in src]
    module = ast.parse(source)
    module.body = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    namespace = {"torch": torch, "math": math, **(names or {})}
    exec(compile(module, f"{notebook}:{name}", "exec"), namespace)
    return namespace[name]


def test_ot_flow_equals_notebook_00_line():
    """00: x_t = (1 - (1 - sigma_min) t) x0 + t x1 is OTPath.psi_t."""
    gen = torch.Generator().manual_seed(3)
    x0, x1 = (
        torch.randn(50, 2, generator=gen, dtype=D64),
        torch.randn(50, 2, generator=gen, dtype=D64),
    )
    for sigma_min in (0.0, 0.1, 0.4):
        for t in (0.0, 0.3, 1.0):
            line = (1 - (1 - sigma_min) * t) * x0 + t * x1
            torch.testing.assert_close(OTPath(sigma_min).psi_t(x0, x1, t), line, rtol=0, atol=1e-15)


def test_euler_affine_of_notebook_00_is_fmlib_euler():
    """00: K Euler steps at once on an affine conditional field (x_K = a x0 + b x1, two
    products) is fmlib's Euler solver on u_t(x | x1), for the VP path and an OT path."""
    from fmlib.paths import VPPath
    from fmlib.solvers import integrate

    euler_affine = notebook_function("00_start_here.ipynb", "euler_affine")
    gen = torch.Generator().manual_seed(8)
    x0, x1 = (torch.randn(30, 2, generator=gen, dtype=D64) for _ in range(2))
    for path in (VPPath(), VPPath(0.5, 5.0), OTPath(0.2)):
        for steps in (1, 7, 64):
            lib = integrate(lambda x, t, p=path: p.u_t(x, x1, t), x0, steps=steps, method="euler")
            torch.testing.assert_close(euler_affine(path, x0, x1, steps), lib.x, rtol=0, atol=1e-12)


def test_gaussian_flow_is_the_field_of_notebook_02():
    """02: u_t(x) = m + (s - 1)/(1 - t + t s) (x - t m) (no swirl) is GaussianFlow(m, s)."""
    gen = torch.Generator().manual_seed(4)
    m, s = torch.tensor([2.0, 1.0], dtype=D64), 0.3
    x = torch.randn(20, 2, generator=gen, dtype=D64)
    for t in (0.0, 0.4, 0.9):
        formula = m + (s - 1) / (1 - t + t * s) * (x - t * m)
        field = GaussianFlow(m, s)(x, torch.full((20,), t, dtype=D64))
        torch.testing.assert_close(field, formula, rtol=0, atol=1e-12)


def test_continuity_residual_equals_notebook_03_lines():
    """03: residual_by_hand is fmlib.continuity.continuity_residual (same grid, same dt)."""
    residual_by_hand = notebook_function("03_continuity_equation.ipynb", "residual_by_hand")
    path, x1 = OTPath(0.2), torch.tensor([-1.0, 0.7], dtype=D64)

    def log_p(x, t):
        return path.log_prob(x, x1.expand_as(x), t)

    def u(x, t):
        return path.u_t(x, x1.expand_as(x), t)

    for t, n, lim in ((0.3, 17, 3.0), (0.7, 33, 2.5)):
        h = 2 * lim / (n - 1)
        ours = residual_by_hand(log_p, u, t, lim=lim, n=n)
        lib = continuity_residual(log_p, u, t, lim=lim, n=n, dt=h / 4)
        torch.testing.assert_close(ours, lib, rtol=0, atol=1e-12)


def test_marginal_field_equals_notebook_04_lines():
    """04: marginal_by_hand (softmax posterior, weighted conditional fields) is
    fmlib.marginal's marginal_velocity and posterior for an empirical distribution."""
    gen = torch.Generator().manual_seed(5)
    x1_data = 2 * torch.randn(7, 2, generator=gen, dtype=D64)
    sigma_min = 0.05
    marginal_by_hand = notebook_function(
        "04_marginalization_trick.ipynb",
        "marginal_by_hand",
        {"sigma_min": sigma_min, "x1_data": x1_data},
    )
    path, q = OTPath(sigma_min), GaussianMixture(x1_data, 0.0)
    x = 2 * torch.randn(40, 2, generator=gen, dtype=D64)
    for t in (0.2, 0.6, 0.95):
        u, w = marginal_by_hand(x, t)
        torch.testing.assert_close(u, marginal_velocity(path, q, x, t), rtol=0, atol=1e-10)
        torch.testing.assert_close(w, posterior(path, q, x, t), rtol=0, atol=1e-10)


def test_hutchinson_equals_notebook_02_lines():
    """02: hutchinson_lines (one vector-Jacobian product eps^T J per probe, dotted with eps) is
    fmlib.divergence's value_and_hutchinson, and hutchinson draws the same probes."""
    from fmlib.divergence import draw_probes, hutchinson, value_and_hutchinson

    hutchinson_lines = notebook_function(
        "02_continuous_normalizing_flows.ipynb", "hutchinson_lines"
    )
    gen = torch.Generator().manual_seed(6)
    W = torch.randn(5, 5, generator=gen, dtype=D64)

    def u(x, t):
        return torch.tanh(x @ W) * (1 + t[:, None])

    x = torch.randn(30, 5, generator=gen, dtype=D64)
    t = torch.full((30,), 0.4, dtype=D64)
    for k in (1, 3):
        eps = draw_probes((k, 30, 5), "rademacher", torch.Generator().manual_seed(k), D64)
        ours = hutchinson_lines(u, x, t, eps)
        torch.testing.assert_close(ours, value_and_hutchinson(u, x, t, eps)[1], rtol=0, atol=1e-12)
        lib = hutchinson(u, x, t, n_probes=k, generator=torch.Generator().manual_seed(k))
        torch.testing.assert_close(ours, lib, rtol=0, atol=1e-12)


def test_log_likelihood_solves_notebook_02_augmented_ode():
    """02: integrating the notebook's augmented field [u_t(x), -div u_t(x)] backward from
    [x_1, 0] and returning log p_0(x_0) - l_0 is fmlib.solvers.log_likelihood."""
    from fmlib.divergence import divergence
    from fmlib.solvers import integrate, log_likelihood, standard_normal_log_prob

    augmented = notebook_function(
        "02_continuous_normalizing_flows.ipynb", "augmented", {"divergence": divergence}
    )
    g = GaussianFlow(torch.tensor([1.0, -0.5], dtype=D64), 0.4, omega=2.0)
    x1 = torch.randn(40, 2, generator=torch.Generator().manual_seed(7), dtype=D64)
    for method, steps in (("euler", 20), ("rk4", 30)):
        z1 = torch.cat([x1, torch.zeros(40, 1, dtype=D64)], dim=1)
        z0 = integrate(augmented(g, 2), z1, 1.0, 0.0, steps=steps, method=method).x
        ours = standard_normal_log_prob(z0[:, :2]) - z0[:, 2]
        lib, x0 = log_likelihood(g, x1, standard_normal_log_prob, steps=steps, method=method)
        torch.testing.assert_close(ours, lib, rtol=0, atol=1e-10)
        torch.testing.assert_close(z0[:, :2], x0, rtol=0, atol=1e-10)
