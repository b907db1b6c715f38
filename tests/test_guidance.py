"""fmlib.guidance against independent computations: closed-form Gaussian fields, a
two-Gaussian tilted density, the TV of two normals, and a short training run."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from fmlib import guidance as G
from fmlib.marginal import GaussianMixture
from fmlib.paths import OTPath
from fmlib.repro import one_thread
from fmlib.solvers import integrate


def _gaussian_ot_field(m: torch.Tensor, s: float, x: torch.Tensor, t: float) -> torch.Tensor:
    """Exact OT field (sigma_min = 0) of q = N(m, s^2 I), by linear regression:
    x_t = t x1 + (1 - t) x0 ~ N(t m, v I), v = t^2 s^2 + (1 - t)^2, and
    u_t(x) = E[x1 - x0 | x_t = x] = m + (t s^2 - (1 - t)) / v (x - t m)."""
    v = t**2 * s**2 + (1 - t) ** 2
    return m + (t * s**2 - (1 - t)) / v * (x - t * m)


def _mixture_ot_field(q: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """sum_k P(k | x) u_t^k(x), P(k | x) from the Gaussians N(t m_k, v_k) written out."""
    fields, logits = [], []
    for m, s, w in zip(q.means, q.stds.tolist(), q.weights, strict=True):
        v = t**2 * s**2 + (1 - t) ** 2
        logits.append(torch.log(w) - ((x - t * m) ** 2).sum(1) / (2 * v) - math.log(v))
        fields.append(_gaussian_ot_field(m, s, x, t))
    p = torch.softmax(torch.stack(logits, 1), 1)
    return (p[..., None] * torch.stack(fields, 1)).sum(1)


def test_labelled_mixture_means_and_validation():
    q = G.labelled_mixture(n_classes=4, radius=2.0, std=0.5)
    assert torch.allclose(
        q.means.norm(dim=1), torch.full((4,), 2.0, dtype=torch.float64), atol=1e-12
    )
    assert torch.allclose(q.means[0], torch.tensor([0.0, 2.0], dtype=q.means.dtype), atol=1e-12)
    assert torch.allclose(q.means[0] + q.means[2], torch.zeros(2, dtype=q.means.dtype), atol=1e-12)
    with pytest.raises(ValueError, match="n_classes must be"):
        G.labelled_mixture(n_classes=1)
    with pytest.raises(ValueError, match="std must be in"):
        G.labelled_mixture(std=0.0)
    with pytest.raises(ValueError, match="y must be an integer in \\[0, 2\\]"):
        G.class_mixture(G.labelled_mixture(), 3)


def test_exact_guided_field_equals_closed_forms():
    q = G.labelled_mixture()
    g = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(50, 2, generator=g, dtype=torch.float64)
    for t in (0.0, 0.3, 0.9, 1.0):
        u_y = _gaussian_ot_field(q.means[1], 0.6, x, t)
        u_q = _mixture_ot_field(q, x, t)
        for w in (0.0, 1.0, 3.0):
            got = G.exact_guided_field(q, 1, w)(x, torch.full((50,), t, dtype=torch.float64))
            assert torch.allclose(got, (1 - w) * u_q + w * u_y, atol=1e-10), (t, w)
    w_rows = torch.linspace(0.0, 4.0, 50, dtype=torch.float64)  # one weight per particle
    by_row = G.exact_guided_field(q, 1, w_rows)(x, torch.tensor(0.5, dtype=torch.float64))
    one = torch.stack(
        [G.exact_guided_field(q, 1, float(w))(x[i : i + 1], 0.5)[0] for i, w in enumerate(w_rows)]
    )
    assert torch.allclose(by_row, one, atol=1e-12)


def test_guided_flow_at_w1_samples_the_class():
    q = G.labelled_mixture()
    g = torch.Generator().manual_seed(1)
    n = 4000
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    with one_thread():
        x1 = integrate(G.exact_guided_field(q, 2, 1.0), x0, steps=40, method="rk4").x
    se = 0.6 / math.sqrt(n)
    assert (x1.mean(0) - q.means[2]).abs().max() < 4 * se
    assert abs(x1.std(0).mean() - 0.6) < 4 * 0.6 / math.sqrt(2 * n)


def test_tilted_density_is_class_density_times_classifier_power():
    # log q(x|y) + (w - 1) log P(y | x), P(y | x) for two equal-weight normals written out
    q = GaussianMixture(torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64), 0.7)
    x = torch.linspace(-2, 3, 11, dtype=torch.float64)[:, None].repeat(1, 2)
    d0, d1 = ((x - q.means[0]) ** 2).sum(1), ((x - q.means[1]) ** 2).sum(1)
    log_q0 = -d0 / (2 * 0.49) - math.log(2 * math.pi * 0.49)
    log_post0 = -torch.log1p(torch.exp((d0 - d1) / (2 * 0.49)))
    for w in (0.0, 2.0, 5.0):
        diff = G.tilted_log_prob(q, 0, w, x) - (log_q0 + (w - 1) * log_post0)
        assert float(diff.max() - diff.min()) < 1e-10  # equal up to the constant log Z


def test_total_variation_of_two_normals():
    x = torch.linspace(-10, 11, 20001, dtype=torch.float64)
    tv = G.total_variation(-(x**2) / 2, -((x - 1) ** 2) / 2)
    assert tv == pytest.approx(2 * norm.cdf(0.5) - 1, abs=1e-6)
    assert G.total_variation(x, x) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        G.total_variation(x, x[:-1])


def test_accuracy_and_spread_with_standard_errors():
    q = G.labelled_mixture()
    g = torch.Generator().manual_seed(2)
    n = 20000
    x = q.means[0] + 0.6 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    a, se_a = G.accuracy(q, x, 0)
    # P(class 0 wins | x ~ N(m_0, s^2)), by integration on a grid
    grid = torch.linspace(-4, 4, 321, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    dens = torch.exp(-((pts - q.means[0]) ** 2).sum(1) / (2 * 0.36)) / (2 * math.pi * 0.36)
    exact = float((dens * (G.classify(q, pts) == 0)).sum() * (grid[1] - grid[0]) ** 2)
    a_t = (n * a + 2) / (n + 4)
    assert se_a == pytest.approx(math.sqrt(a_t * (1 - a_t) / (n + 4)))
    assert G.accuracy(q, q.means[:1], 0) == (1.0, pytest.approx(math.sqrt(3 / 5 * 2 / 5 / 5)))
    assert abs(a - exact) < 4 * se_a
    r, se_r = G.spread(x)
    assert abs(r - 0.6 * math.sqrt(2)) < 4 * se_r  # E|x - m|^2 = 2 s^2 in 2D
    with pytest.raises(ValueError, match="x must have shape"):
        G.spread(x[:1])
    # the per-sample terms: their mean is the estimate, their std / sqrt(N) its SE
    assert float(G.accuracy_terms(q, x, 0).mean()) == a
    terms = G.spread_terms(x)
    assert float(terms.mean()) == pytest.approx(r, rel=1e-12)
    assert float(terms.std() / math.sqrt(n)) == pytest.approx(se_r, rel=1e-12)
    # paired: a spread 1 % larger from the same x is detected far beyond its unpaired SE
    diff = G.spread_terms(1.01 * x) - terms
    assert float(diff.mean()) == pytest.approx(0.01 * r, rel=1e-9)
    assert float(diff.std() / math.sqrt(n)) < se_r / 10
    with pytest.raises(ValueError, match="x must have shape"):
        G.spread_terms(x[:1])


def test_drop_labels_rate():
    g = torch.Generator().manual_seed(3)
    y = torch.zeros(10000, dtype=torch.long)
    dropped = G.drop_labels(y, 0.2, null=3, generator=g)
    rate = float((dropped == 3).double().mean())
    assert set(dropped.unique().tolist()) == {0, 3}
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 10000)
    with pytest.raises(ValueError, match="p_drop must be in"):
        G.drop_labels(y, 1.5, null=3)


def test_conditional_loss_and_cfg_field():
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    t, y = torch.rand(64, generator=g), torch.randint(0, 4, (64,), generator=g)
    path = OTPath(0.1)
    x_t = (1 - 0.9 * t[:, None]) * x0 + t[:, None] * x1
    expected = ((x_t * y[:, None] - (x1 - 0.9 * x0)) ** 2).sum(1).mean()
    fake = lambda x, t, y: x * y[:, None]  # noqa: E731
    assert G.conditional_cfm_loss(fake, x0, x1, y, t, path) == pytest.approx(float(expected))

    torch.manual_seed(0)
    model = G.ConditionalMLP(3, hidden=16)
    x = torch.randn(10, 2, generator=g)
    with torch.no_grad():
        u_null, u_1 = model(x, 0.4, torch.full((10,), 3)), model(x, 0.4, torch.full((10,), 1))
        got = G.cfg_field(model, 1, 2.5)(x, torch.full((10,), 0.4))
    assert not torch.allclose(u_null, u_1)  # the label reaches the output
    assert torch.allclose(got, -1.5 * u_null + 2.5 * u_1, atol=1e-6)
    with pytest.raises(ValueError, match="y must be in \\[0, 3\\]"):
        model(x, 0.4, torch.full((10,), 4))
    with pytest.raises(ValueError, match="y must be an integer in"):
        G.cfg_field(model, 3, 1.0)


def test_short_training_learns_the_conditional_and_unconditional_fields():
    torch.manual_seed(0)
    q = G.labelled_mixture(dtype=torch.float32)
    model = G.ConditionalMLP(3, hidden=32)
    g = torch.Generator().manual_seed(5)
    with one_thread():  # small tensors: a second thread only waits
        model, losses = G.train_conditional(
            model, q, OTPath(), steps=300, generator=g, progress=False
        )
    x = 1.5 * torch.randn(500, 2, generator=g)
    t = torch.rand(500, generator=g) * 0.9
    with torch.no_grad():
        learned_null = model(x, t, torch.full((500,), model.null))
        learned_0 = model(x, t, torch.zeros(500, dtype=torch.long))
    exact_q = G.exact_guided_field(q, 0, 0.0)(x, t)
    exact_0 = G.exact_guided_field(q, 0, 1.0)(x, t)

    def err(a, b):
        return float(((a - b) ** 2).sum(1).mean().sqrt())

    assert sum(losses[-30:]) < sum(losses[:30])
    # the null label learned u_t(x), label 0 learned u_t(x | 0): each nearer its own field
    assert err(learned_null, exact_q) < 0.5 * err(learned_null, exact_0)
    assert err(learned_0, exact_0) < 0.5 * err(learned_0, exact_q)


def test_conditional_mlp_is_the_mlp_with_a_label_input():
    """ConditionalMLP is fmlib.models.MLP (sinusoidal gamma(t), no Fourier features of x) with
    the label embedding as extra input: the same layers as that MLP, the state dict of the
    shipped checkpoints (label, then net), and the label changes the field."""
    from fmlib.models import MLP

    torch.manual_seed(0)
    model = G.ConditionalMLP(3, hidden=32, layers=2, time_features=4, label_features=8)
    assert isinstance(model, MLP) and model.config["condition_features"] == 8
    plain = MLP(hidden=32, layers=2, time_features=4, max_frequency=5.0, condition_features=8)
    assert [p.shape for p in model.net.parameters()] == [p.shape for p in plain.net.parameters()]
    assert list(model.state_dict())[:3] == ["frequencies", "label.weight", "net.0.weight"]
    x, t = torch.randn(6, 2), torch.full((6,), 0.5)
    assert not torch.equal(
        model(x, t, torch.zeros(6, dtype=torch.long)), model(x, t, torch.ones(6, dtype=torch.long))
    )
    with pytest.raises(ValueError, match="model must be an fmlib.models.MLP"):
        from fmlib.models import save

        save(model, "unused.pt")
