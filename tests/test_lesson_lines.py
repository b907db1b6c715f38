"""The lesson's lines, as written in the notebooks, equal fmlib's tested copies.

Each notebook writes the maths of its chapter in a code cell; fmlib keeps the copy the
rest of the course reuses. A cell whose first line is

    # lesson: fmlib.solvers.euler_step, fmlib.solvers.rk4_step

holds the lesson's version of those fmlib functions. For each name, CASES runs the cell's
own code (read from the .ipynb: its `def`s, or the line a case names) against fmlib's
function on fixed inputs, and a planted difference (one small edit of the cell's source,
`Case.plant`) must make the comparison fail, so that the check has power.
"""

from __future__ import annotations

import ast
import copy
import json
import math
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tqdm.auto import tqdm

from fmlib import data, manifolds
from fmlib import reward_tuning as rt
from fmlib.continuity import continuity_residual
from fmlib.divergence import divergence, draw_probes, hutchinson, jacobian, value_and_hutchinson
from fmlib.flows import CouplingLayer, GaussianFlow, log_abs_det
from fmlib.losses import l_cfm
from fmlib.marginal import GaussianMixture, marginal_velocity, posterior
from fmlib.metrics import frechet_distance
from fmlib.paths import OTPath, VPPath
from fmlib.solvers import (
    euler_step,
    integrate,
    log_likelihood,
    midpoint_step,
    rk4_step,
    standard_normal_log_prob,
)
from fmlib.training import Recipe, sample_time, train, train_steps

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MARKER = re.compile(r"#\s*lesson:\s*(.+)")
D64 = torch.float64


def code_cells(notebook: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def markers() -> dict[str, tuple[str, str]]:
    """fmlib name -> (notebook, source of the cell whose first line is its lesson marker)."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for source in code_cells(path.name):
            match = MARKER.fullmatch(source.split("\n", 1)[0].strip())
            for name in match.group(1).split(",") if match else ():
                assert name.strip() not in found, f"two cells mark {name.strip()}"
                found[name.strip()] = (path.name, source)
    return found


def definitions(source: str, where: str, **names) -> dict:
    """Run only the `def` statements of a cell, with torch, math and `names` as globals."""
    module = ast.parse(source)
    module.body = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    namespace = {"torch": torch, "math": math, **names}
    exec(compile(module, where, "exec"), namespace)
    return namespace


@dataclass(frozen=True)
class Case:
    notebook: str
    check: Callable[[str], None]  # raises AssertionError when the cell's code differs
    plant: tuple[str, str]  # (old, new) in the cell's source: the check must then fail


# ---- the comparisons, one per fmlib name ---------------------------------------------


def _coupling_layer(source: str) -> None:
    """01: `coupling_forward` gives CouplingLayer's x and log-det s(z_a), itself log|det| of
    the autograd Jacobian; the inverse undoes it."""
    coupling_forward = definitions(source, "01")["coupling_forward"]
    scale, shift = (lambda a: 0.7 * torch.tanh(a) - 0.1), (lambda a: a**2 - 0.5)
    z = torch.randn(300, 2, generator=torch.Generator().manual_seed(5), dtype=D64)
    for flip in (False, True):
        x_nb, log_det_nb = coupling_forward(z, scale, shift, flip)
        layer = CouplingLayer(scale, shift, flip)
        x_lib, log_det_lib = layer.forward(z)
        assert torch.equal(x_nb, x_lib) and torch.equal(log_det_nb, log_det_lib)
        jac = jacobian(lambda y, t, f=flip: coupling_forward(y, scale, shift, f)[0], z, 0.0)
        assert (log_abs_det(jac) - log_det_nb).abs().max() < 1e-12
        assert torch.allclose(layer.inverse(x_lib), z, atol=1e-12, rtol=0)


def _solver_step(name: str, library) -> Callable[[str], None]:
    def check(source: str) -> None:
        """02: the notebook's `euler`, `midpoint`, `rk4` are fmlib.solvers' steps."""
        step = definitions(source, "02")[name]
        g = GaussianFlow(torch.tensor([2.0, 1.0], dtype=D64), 0.3, omega=2.0)
        x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
        for t, h in [(0.0, 0.1), (0.37, 0.05), (0.9, 0.1), (1.0, -0.25)]:
            tt = torch.full((100,), t, dtype=D64)
            assert torch.allclose(step(g, x, tt, h), library(g, x, tt, h), atol=1e-14, rtol=0)

    return check


def _gaussian_conditional_field(source: str) -> None:
    """00: the derived u_t(x | x1) = sigma_t'/sigma_t (x - mu_t) + mu_t' is GaussianPath.u_t
    (computed through sigma_t sigma_t' / sigma_t^2) wherever sigma_t > 0."""
    u_gaussian = definitions(source, "00")["u_gaussian"]
    gen = torch.Generator().manual_seed(2)
    x = 2 * torch.randn(200, 2, generator=gen, dtype=D64)
    x1 = torch.randn(200, 2, generator=gen, dtype=D64)
    for path in (OTPath(0.0), OTPath(0.1), VPPath()):
        for t in (0.05, 0.3, 0.7, 0.95):
            t = torch.tensor(t, dtype=D64)
            assert torch.allclose(u_gaussian(path, x, x1, t), path.u_t(x, x1, t), atol=1e-10)


def _euler_affine(source: str) -> None:
    """00: K Euler steps at once on an affine conditional field (x_K = a x0 + b x1) is
    fmlib's Euler solver on u_t(x | x1), for VP paths and an OT path."""
    euler_affine = definitions(source, "00")["euler_affine"]
    gen = torch.Generator().manual_seed(8)
    x0, x1 = (torch.randn(30, 2, generator=gen, dtype=D64) for _ in range(2))
    for path in (VPPath(), VPPath(0.5, 5.0), OTPath(0.2)):
        for steps in (1, 7, 64):
            lib = integrate(lambda x, t, p=path: p.u_t(x, x1, t), x0, steps=steps, method="euler")
            torch.testing.assert_close(euler_affine(path, x0, x1, steps), lib.x, rtol=0, atol=1e-12)


def _continuity_residual(source: str) -> None:
    """03: `residual_by_hand` is fmlib.continuity.continuity_residual (same grid, same dt)."""
    residual_by_hand = definitions(source, "03")["residual_by_hand"]
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


def _marginal_field(source: str) -> None:
    """04: `marginal_by_hand` (softmax posterior, weighted conditional fields) is
    fmlib.marginal's marginal_velocity and posterior for an empirical distribution."""
    gen = torch.Generator().manual_seed(5)
    x1_data = 2 * torch.randn(7, 2, generator=gen, dtype=D64)
    sigma_min = 0.05
    names = {"sigma_min": sigma_min, "x1_data": x1_data}
    marginal_by_hand = definitions(source, "04", **names)["marginal_by_hand"]
    path, q = OTPath(sigma_min), GaussianMixture(x1_data, 0.0)
    x = 2 * torch.randn(40, 2, generator=gen, dtype=D64)
    for t in (0.2, 0.6, 0.95):
        u, w = marginal_by_hand(x, t)
        torch.testing.assert_close(u, marginal_velocity(path, q, x, t), rtol=0, atol=1e-10)
        torch.testing.assert_close(w, posterior(path, q, x, t), rtol=0, atol=1e-10)


def _hutchinson(source: str) -> None:
    """02: `hutchinson_lines` (one vector-Jacobian product eps^T J per probe, dotted with
    eps) is fmlib.divergence's value_and_hutchinson, and `hutchinson` draws the same probes."""
    hutchinson_lines = definitions(source, "02")["hutchinson_lines"]
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


def _log_likelihood(source: str) -> None:
    """02: integrating the notebook's augmented field [u_t(x), -div u_t(x)] backward from
    [x_1, 0] and returning log p_0(x_0) - l_0 is fmlib.solvers.log_likelihood."""
    augmented = definitions(source, "02", divergence=divergence)["augmented"]
    g = GaussianFlow(torch.tensor([1.0, -0.5], dtype=D64), 0.4, omega=2.0)
    x1 = torch.randn(40, 2, generator=torch.Generator().manual_seed(7), dtype=D64)
    for method, steps in (("euler", 20), ("rk4", 30)):
        z1 = torch.cat([x1, torch.zeros(40, 1, dtype=D64)], dim=1)
        z0 = integrate(augmented(g, 2), z1, 1.0, 0.0, steps=steps, method=method).x
        ours = standard_normal_log_prob(z0[:, :2]) - z0[:, 2]
        lib, x0 = log_likelihood(g, x1, standard_normal_log_prob, steps=steps, method=method)
        torch.testing.assert_close(ours, lib, rtol=0, atol=1e-10)
        torch.testing.assert_close(z0[:, :2], x0, rtol=0, atol=1e-10)


def _cfm_loss_line(source: str) -> None:
    """05: the first loop's line `loss = ...  # the CFM loss` is fmlib.losses.l_cfm."""
    lines = [ln for ln in source.splitlines() if ln.rstrip().endswith("# the CFM loss")]
    assert len(lines) == 1, lines
    (statement,) = ast.parse(lines[0].strip()).body
    code = compile(ast.Expression(statement.value), "05:loss line", "eval")
    for sigma_min in (0.0, 0.1):
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        model, path = Recipe().model(), OTPath(sigma_min)
        x0, x1 = torch.randn(256, 2, generator=g), data.sample("checkerboard", 256, g)
        t = torch.rand(256, generator=g)
        names = {"model": model, "t": t}
        names |= {"x_t": path.psi_t(x0, x1, t), "target": path.target(x0, x1, t)}
        with torch.no_grad():
            by_notebook = eval(code, names)  # the notebook's own line
            by_fmlib = l_cfm(model, x0, x1, t, path)
        torch.testing.assert_close(by_notebook, by_fmlib, rtol=1e-6, atol=0)


def _training_loop(source: str) -> None:
    """05: 40 steps of the notebook's `train_cfm` and of fmlib.training.train from the same
    weights and seed end at the same losses and EMA weights (the notebook's table was made
    with `train`)."""
    names = {"copy": copy, "tqdm": tqdm, "data": data, "sample_time": sample_time}
    train_cfm = definitions(source, "05", path=OTPath(0.0), **names)["train_cfm"]
    recipe = Recipe()
    torch.manual_seed(0)
    start = recipe.model()
    ema_here, losses = train_cfm(copy.deepcopy(start), 40)
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


def _sphere_maps(source: str) -> None:
    """13: the notebook's sphere_dist / sphere_exp / sphere_log / sphere_geodesic are
    fmlib.manifolds.Sphere's maps and fmlib.manifolds.geodesic, on random pairs and times."""
    nb = definitions(source, "13")
    S = manifolds.Sphere()
    g = torch.Generator().manual_seed(2)
    x0, x1 = S.uniform(300, g, dtype=D64), S.uniform(300, g, dtype=D64)
    v = S.project(x0, torch.randn(300, 3, generator=g, dtype=D64))
    torch.testing.assert_close(nb["sphere_dist"](x0, x1), S.dist(x0, x1), atol=1e-14, rtol=0)
    torch.testing.assert_close(nb["sphere_exp"](x0, v), S.exp(x0, v), atol=1e-14, rtol=0)
    torch.testing.assert_close(nb["sphere_log"](x0, x1), S.log(x0, x1), atol=1e-13, rtol=0)
    for t in (0.0, 0.3, 1.0):
        torch.testing.assert_close(
            nb["sphere_geodesic"](x0, x1, t),
            manifolds.geodesic(S, x0, x1, t),
            atol=1e-13,
            rtol=0,
        )


def _manifold_training(source: str) -> None:
    """13: 20 steps of the notebook's `train_manifold` and of fmlib.manifolds.fit (geodesic
    target, same seed) end at the same losses and EMA weights, on the sphere and the torus."""
    short = types.SimpleNamespace(**vars(manifolds))
    short.STEPS = 20
    train_manifold = definitions(source, "13", manifolds=short, train_steps=train_steps)[
        "train_manifold"
    ]
    M_data = (
        (manifolds.Sphere(), manifolds.sphere_target),
        (manifolds.Torus(), manifolds.torus_checkerboard),
    )
    for M, sample_x1 in M_data:
        ema_here, losses_here = train_manifold(M, sample_x1, seed=3)
        ema_lib, losses_lib = manifolds.fit(
            M, sample_x1, "geodesic", seed=3, steps=20, progress=False
        )
        assert losses_here == losses_lib
        for a, b in zip(ema_here.parameters(), ema_lib.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _frechet(source: str) -> None:
    """14: the notebook's `frechet` is fmlib.metrics.frechet_distance on clouds whose
    covariances do not commute (the matrix square root matters)."""
    frechet = definitions(source, "14")["frechet"]
    g = torch.Generator().manual_seed(14)
    a = torch.randn(300, 5, generator=g, dtype=D64) @ torch.randn(5, 5, generator=g, dtype=D64)
    b = torch.randn(200, 5, generator=g, dtype=D64) @ torch.randn(5, 5, generator=g, dtype=D64)
    assert math.isclose(frechet(a, b), frechet_distance(a, b), rel_tol=1e-9)


NB00, NB01, NB02 = "00_start_here", "01_change_of_variables", "02_continuous_normalizing_flows"
NB03, NB04, NB05 = "03_continuity_equation", "04_marginalization_trick", "05_cfm_training"


def _conversion(name: str) -> Callable[[str], None]:
    def check(source: str) -> None:
        """12: the notebook's conversions between velocity, data, noise and score are
        fmlib.diffusion's, on the OT (with and without sigma_min), VP and cosine paths."""
        from fmlib import diffusion
        from fmlib.paths import cosine_path

        first = markers()["fmlib.diffusion.velocity_to_x1"][1]  # defines coefficients()
        lesson = definitions(source, "12", coefficients=definitions(first, "12")["coefficients"])
        lesson = lesson[name]
        gen = torch.Generator().manual_seed(12)
        x, v = (torch.randn(100, 2, generator=gen, dtype=D64) for _ in range(2))
        for path in (OTPath(0.0), OTPath(0.1), VPPath(), cosine_path()):
            for t in (0.1, 0.5, 0.9):
                t = torch.tensor(t, dtype=D64)
                got, want = lesson(path, x, t, v), getattr(diffusion, name)(path, x, t, v)
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    return check


def _euler_maruyama(source: str) -> None:
    """12: the notebook's Euler-Maruyama loop is fmlib.diffusion.euler_maruyama, draw by draw."""
    from fmlib import diffusion

    lesson = definitions(source, "12")["euler_maruyama"]
    path = OTPath(0.0)
    q = GaussianMixture(torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=D64), 0.4)
    u = lambda x, t: marginal_velocity(path, q, x, t)  # noqa: E731
    g = diffusion.scaled_sigma(path, 1.5)
    drift = diffusion.sde_drift(u, diffusion.score_field(path, u), g)
    x0 = torch.randn(200, 2, generator=torch.Generator().manual_seed(3), dtype=D64)
    for steps in (1, 5, 20):
        got = lesson(drift, g, x0, steps, torch.Generator().manual_seed(steps))
        want = diffusion.euler_maruyama(drift, g, x0, steps, torch.Generator().manual_seed(steps))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-13)


def _reward(source: str) -> None:
    """11: the notebook's `reward_fn` is fmlib.reward_tuning.reward, r(x) = -|x - c|^2 / 2."""
    c = torch.tensor(rt.REWARD_CENTRE, dtype=D64)
    reward_fn = definitions(source, "11", c_reward=c)["reward_fn"]
    x = 3 * torch.randn(500, 2, generator=torch.Generator().manual_seed(11), dtype=D64)
    assert torch.equal(reward_fn(x), rt.reward(x))


def _weighted_cfm_loss(source: str) -> None:
    """11: the notebook's `weighted_cfm_loss` is fmlib.reward_tuning.weighted_cfm_loss (the
    loss rt.finetune trains with), on a network, with weights and with all weights 1 (then
    fmlib.losses.l_cfm on the OT path)."""
    lesson = definitions(source, "11")["weighted_cfm_loss"]
    g = torch.Generator().manual_seed(57)
    torch.manual_seed(57)
    model = rt.make_model()
    x0, x1 = torch.randn(256, 2, generator=g), 2 * torch.randn(256, 2, generator=g)
    t, w = torch.rand(256, generator=g), 2 * torch.rand(256, generator=g)
    with torch.no_grad():
        assert torch.equal(lesson(model, x0, x1, t, w), rt.weighted_cfm_loss(model, x0, x1, t, w))
        ones = lesson(model, x0, x1, t, torch.ones(256))
        torch.testing.assert_close(ones, l_cfm(model, x0, x1, t, OTPath(0.0)), rtol=1e-6, atol=0)


NB13 = "13_riemannian_flow_matching"
CASES = {
    "fmlib.paths.GaussianPath.u_t": Case(
        f"{NB00}.ipynb",
        _gaussian_conditional_field,
        ("+ path.d_mu_t(x1, t)", "- path.d_mu_t(x1, t)"),
    ),
    "fmlib.solvers.integrate": Case(
        f"{NB00}.ipynb",
        _euler_affine,
        ("c = 1 + h * g", "c = 1 + 1.01 * h * g"),
    ),
    "fmlib.flows.CouplingLayer": Case(
        f"{NB01}.ipynb",
        _coupling_layer,
        ("+ shift(z_a)", "- shift(z_a)"),
    ),
    "fmlib.solvers.euler_step": Case(
        f"{NB02}.ipynb",
        _solver_step("euler", euler_step),
        ("return x + h * u(x, t)", "return x + h * u(x, t + h)"),
    ),
    "fmlib.solvers.midpoint_step": Case(
        f"{NB02}.ipynb",
        _solver_step("midpoint", midpoint_step),
        ("u(x, t), t + h / 2)", "u(x, t), t + h)"),
    ),
    "fmlib.solvers.rk4_step": Case(
        f"{NB02}.ipynb", _solver_step("rk4", rk4_step), ("2 * k3", "3 * k3")
    ),
    "fmlib.divergence.value_and_hutchinson": Case(
        f"{NB02}.ipynb", _hutchinson, ("estimate / len(eps)", "estimate / (len(eps) + 1)")
    ),
    "fmlib.solvers.log_likelihood": Case(
        f"{NB02}.ipynb", _log_likelihood, ("-divergence(u,", "divergence(u,")
    ),
    "fmlib.continuity.continuity_residual": Case(
        f"{NB03}.ipynb", _continuity_residual, ("/ (2 * dt)", "/ (1.9 * dt)")
    ),
    "fmlib.marginal.marginal_velocity": Case(
        f"{NB04}.ipynb",
        _marginal_field,
        ("(2 * sigma_t**2)", "(2.2 * sigma_t**2)"),
    ),
    "fmlib.losses.l_cfm": Case(
        f"{NB05}.ipynb",
        _cfm_loss_line,
        (".sum(dim=1).mean()  # the CFM", ".mean()  # the CFM"),
    ),
    "fmlib.training.train": Case(
        f"{NB05}.ipynb",
        _training_loop,
        ("(1 + k) / (10 + k)", "(1 + k) / (11 + k)"),
    ),
    "fmlib.manifolds.Sphere.exp": Case(
        f"{NB13}.ipynb", _sphere_maps, ("torch.cos(n) * x +", "torch.cos(1.001 * n) * x +")
    ),
    "fmlib.manifolds.Sphere.log": Case(
        f"{NB13}.ipynb",
        _sphere_maps,
        ("d = sphere_dist(x, y)[:, None]", "d = 1.001 * sphere_dist(x, y)[:, None]"),
    ),
    "fmlib.manifolds.geodesic": Case(
        f"{NB13}.ipynb",
        _sphere_maps,
        ("sphere_exp(x0, t * sphere_log", "sphere_exp(x0, (t + 1e-3) * sphere_log"),
    ),
    "fmlib.manifolds.fit": Case(
        f"{NB13}.ipynb",
        _manifold_training,
        ("x_t, x1, t)  # log", "x_t, x1, 0.999 * t)  # log"),
    ),
    "fmlib.metrics.frechet_distance": Case(
        "14_digits.ipynb", _frechet, ("- 2 * middle.sqrt()", "- 1.9 * middle.sqrt()")
    ),
    "fmlib.diffusion.velocity_to_x1": Case(
        "12_flows_and_diffusion.ipynb",
        _conversion("velocity_to_x1"),
        ("(sigma**2 * u - sds * x)", "(sigma**2 * u + sds * x)"),
    ),
    "fmlib.diffusion.velocity_to_eps": Case(
        "12_flows_and_diffusion.ipynb",
        _conversion("velocity_to_eps"),
        ("sigma * (d_alpha * x - alpha * u)", "sigma * (d_alpha * x + alpha * u)"),
    ),
    "fmlib.diffusion.velocity_to_score": Case(
        "12_flows_and_diffusion.ipynb",
        _conversion("velocity_to_score"),
        ("return -(d_alpha * x - alpha * u) / den", "return (d_alpha * x - alpha * u) / den"),
    ),
    "fmlib.diffusion.score_to_velocity": Case(
        "12_flows_and_diffusion.ipynb",
        _conversion("score_to_velocity"),
        ("(d_alpha * x + den * score)", "(d_alpha * x - den * score)"),
    ),
    "fmlib.reward_tuning.reward": Case(
        "11_model_adaptation.ipynb", _reward, ("-0.5 * ((x - c_reward)", "-0.49 * ((x - c_reward)")
    ),
    "fmlib.reward_tuning.weighted_cfm_loss": Case(
        "11_model_adaptation.ipynb",
        _weighted_cfm_loss,
        ("t[:, None] * x1\n", "t[:, None] * x1 * 1.001\n"),
    ),
    "fmlib.diffusion.euler_maruyama": Case(
        "12_flows_and_diffusion.ipynb",
        _euler_maruyama,
        ("g(t) * math.sqrt(h) * z", "g(t) * h * z"),
    ),
}


def cell_of(name: str) -> str:
    """The source of the cell marked as the lesson's version of fmlib's `name`."""
    marked = markers()
    assert name in marked, f"no cell of {CASES[name].notebook} is marked '# lesson: {name}'"
    notebook, source = marked[name]
    assert notebook == CASES[name].notebook, (name, notebook)
    return source


@pytest.mark.parametrize("name", CASES)
def test_the_lesson_lines_are_fmlibs(name):
    CASES[name].check(cell_of(name))


@pytest.mark.parametrize("name", CASES)
def test_a_planted_difference_fails(name):
    old, new = CASES[name].plant
    source = cell_of(name)
    assert source.count(old) >= 1, (name, old)
    with pytest.raises(AssertionError):
        CASES[name].check(source.replace(old, new, 1))


def test_every_marker_has_a_comparison_and_every_comparison_a_marker():
    """A marker naming an fmlib function without a case here would check nothing; a case
    without its marked cell would compare nothing."""
    marked = markers()
    assert set(marked) == set(CASES), sorted(set(marked) ^ set(CASES))
    for name, (notebook, _) in marked.items():
        assert CASES[name].notebook == notebook, name
