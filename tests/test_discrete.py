"""fmlib.discrete: CTMC rates, the mixture path, posterior, rate matrices, the Euler sampler.

Closed forms and independent computations: the matrix exponential for a chain, brute-force
enumeration of the mixture process for the posterior, autograd for d/dt p_t, and Monte
Carlo (with standard errors) for the sampler against its exact distribution.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from fmlib import discrete

f64 = torch.float64


def _rate_matrix(n: int, seed: int) -> torch.Tensor:
    u = torch.rand(n, n, generator=torch.Generator().manual_seed(seed), dtype=f64)
    u.fill_diagonal_(0)
    return u - torch.diag(u.sum(0))


def _dp_dt(path, q, t):
    tt = torch.tensor(t, dtype=f64)
    return torch.func.jvp(
        lambda s: discrete.joint_marginal(path, q, s).reshape(-1), (tt,), (torch.ones_like(tt),)
    )


def _random_q(d: int, seed: int) -> torch.Tensor:
    q = torch.rand(d, d, generator=torch.Generator().manual_seed(seed), dtype=f64) ** 2
    return q / q.sum()


def test_forward_residual_of_a_chain_vanishes_only_for_its_rates():
    U = _rate_matrix(5, 0)
    p0 = torch.softmax(torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=f64), 0)
    t = torch.tensor(0.8, dtype=f64)
    p, dp = torch.func.jvp(
        lambda s: torch.linalg.matrix_exp(s * U) @ p0, (t,), (torch.ones_like(t),)
    )
    assert discrete.forward_residual(dp, U, p).abs().max() < 1e-13
    wrong = U.T - torch.diag(U.T.sum(0))
    discrete.check_rate_matrix(wrong)
    assert discrete.forward_residual(dp, wrong, p).abs().max() > 1e-2


def test_forward_residual_is_the_notebook_line():
    """Notebook 10 writes the residual as dp - U @ p (forward_residual_fd); fmlib's is that line."""
    U = _rate_matrix(4, 3)
    g = torch.Generator().manual_seed(5)
    p, dp = torch.rand(4, generator=g, dtype=f64), torch.rand(4, generator=g, dtype=f64)
    assert torch.equal(discrete.forward_residual(dp, U, p), dp - U @ p)


def test_check_rate_matrix_rejects_bad_matrices():
    U = _rate_matrix(3, 0)
    discrete.check_rate_matrix(U)
    with pytest.raises(ValueError, match="columns must sum to 0"):
        discrete.check_rate_matrix(U + 0.1 * torch.eye(3, dtype=f64))
    bad = U.clone()
    bad[0, 1], bad[1, 1] = -0.5, bad[1, 1] + 0.5 + U[0, 1]
    with pytest.raises(ValueError, match=">= 0 off the diagonal"):
        discrete.check_rate_matrix(bad)
    with pytest.raises(ValueError, match="square"):
        discrete.check_rate_matrix(torch.zeros(2, 3, dtype=f64))


def test_euler_kernel_converges_at_order_one():
    U, p0 = _rate_matrix(4, 2), torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=f64)
    exact = torch.linalg.matrix_exp(U) @ p0

    def euler(n):
        p = p0
        for _ in range(n):
            p = discrete.euler_kernel(U, 1 / n) @ p
        return float((p - exact).abs().sum())

    assert euler(64) / euler(128) == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("source", discrete.SOURCES)
@pytest.mark.parametrize("power", [0.5, 1.0, 2.5])
def test_conditional_rates_generate_the_conditional_path(source, power):
    path = discrete.MixturePath(4, source, power)
    x1 = 1
    for t in (0.05, 0.5, 0.95):
        tt = torch.tensor(t, dtype=f64)
        p, dp = torch.func.jvp(
            lambda s: path.conditional_probs(s)[:, x1], (tt,), (torch.ones_like(tt),)
        )
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-14)
        states = torch.arange(path.vocab)
        U = path.conditional_rates(states, torch.full_like(states, x1), t).T  # [y, x]
        discrete.check_rate_matrix(U)
        assert discrete.forward_residual(dp, U, p).abs().max() < 1e-12
        # kappa' without 1 / (1 - kappa) leaves kappa_t d/dt p_t: small only where kappa_t is
        wrong = discrete.forward_residual(dp, U * (1 - t**power), p)
        assert torch.allclose(wrong, t**power * dp, atol=1e-14)
        assert wrong.abs().max() > 1e-4 * dp.abs().max()


def _enumerated_posterior(path, q, t):
    """p_{1|t}(x1 | x) by enumerating (x0, x1, which tokens are set): [V, V, D, D]."""
    d, k, p = q.shape[0], float(path.kappa(t)), path.source_probs()
    joint = torch.zeros(path.vocab, path.vocab, d, d, dtype=f64)

    def token(value):  # (x_t^i, probability): set to x1^i, or still a source draw
        return [(value, k)] + [(c, (1 - k) * p[c]) for c in range(path.vocab)]

    for a, b in itertools.product(range(d), repeat=2):
        for (c, w1), (e, w2) in itertools.product(token(a), token(b)):
            joint[c, e, a, b] += q[a, b] * w1 * w2
    return joint


@pytest.mark.parametrize("source", discrete.SOURCES)
def test_posterior_and_marginal_equal_enumeration(source):
    q = _random_q(3, 4)
    path = discrete.MixturePath(3, source, 1.5)
    joint = _enumerated_posterior(path, q, 0.4)
    marginal = joint.sum((2, 3))
    assert torch.allclose(marginal, discrete.joint_marginal(path, q, 0.4), atol=1e-15)
    post = joint / marginal[..., None, None]
    expected = torch.stack([post.sum(3), post.sum(2)], dim=2)
    assert torch.allclose(discrete.posterior(path, q, 0.4), expected, atol=1e-14)


@pytest.mark.parametrize("source", discrete.SOURCES)
def test_marginal_rates_generate_the_marginal_path(source):
    q = _random_q(4, 5)
    path = discrete.MixturePath(4, source, 2.0)
    for t in (0.1, 0.6, 0.9):
        p, dp = _dp_dt(path, q, t)
        U = discrete.joint_rate_matrix(path, discrete.posterior(path, q, t), t)
        discrete.check_rate_matrix(U)
        assert discrete.forward_residual(dp, U, p).abs().max() < 1e-13
        prior = torch.stack([q.sum(1), q.sum(0)]).expand(path.vocab, path.vocab, 2, 4)
        U_prior = discrete.joint_rate_matrix(path, prior, t)
        assert discrete.forward_residual(dp, U_prior, p).abs().max() > 1e-5  # round-off: 1e-17


def test_joint_rate_matrix_moves_one_token_at_a_time():
    path, q = discrete.MixturePath(3, "mask", 1.0), _random_q(3, 6)
    U = discrete.joint_rate_matrix(path, discrete.posterior(path, q, 0.5), 0.5)
    V = path.vocab
    for (a, b), (c, d) in itertools.product(itertools.product(range(V), repeat=2), repeat=2):
        if a != c and b != d:
            assert U[a * V + b, c * V + d] == 0


def test_euler_step_is_delta_plus_h_times_rate():
    path = discrete.MixturePath(5, "uniform", 1.0)
    x = torch.tensor([[0, 3], [2, 2]])
    post = torch.softmax(torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(0)), -1)
    post = post.double()
    t, h = 0.3, 0.1  # h lambda_t = 1/7 <= 1: no clamping
    by_rate = torch.eye(5, dtype=f64)[x] + h * path.marginal_rates(x, post, t)
    assert torch.allclose(discrete.euler_step_probs(path, x, post, t, h), by_rate, atol=1e-15)


def test_jump_probability_is_clamped():
    path = discrete.MixturePath(4, "mask", 0.5)  # lambda_0 = inf
    assert discrete.jump_probability(path, 0.0, 0.01) == 1.0
    assert discrete.jump_probability(discrete.MixturePath(4, "mask", 2.0), 0.0, 0.5) == 0.0
    assert discrete.jump_probability(discrete.MixturePath(4, "mask", 1.0), 0.5, 0.25) == 0.5


def test_one_euler_step_gives_the_product_of_marginals():
    q = _random_q(4, 7)
    for source in discrete.SOURCES:
        path = discrete.MixturePath(4, source, 1.0)
        p = discrete.euler_distribution(path, discrete.exact_posterior_fn(path, q), 1)
        expected = discrete.embed(path, torch.outer(q.sum(1), q.sum(0)))
        assert torch.allclose(p, expected, atol=1e-14)


def test_euler_distribution_converges_to_q():
    q = _random_q(4, 8)
    path = discrete.MixturePath(4, "uniform", 1.0)
    fn = discrete.exact_posterior_fn(path, q)
    tv = [discrete.total_variation(discrete.euler_distribution(path, fn, n), q) for n in (8, 64)]
    assert tv[1] < tv[0] / 4 and tv[1] < 0.01


def test_euler_sample_matches_its_exact_distribution():
    """Monte Carlo vs the propagated distribution: chi-square within 4 standard deviations."""
    q = _random_q(4, 9)
    path = discrete.MixturePath(4, "mask", 1.0)
    fn = discrete.exact_posterior_fn(path, q)
    n = 40_000
    x = discrete.euler_sample(path, fn, n, 3, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(x[:, 0] * path.vocab + x[:, 1], minlength=path.vocab**2)
    p = discrete.euler_distribution(path, fn, 3).reshape(-1)
    seen = p > 1e-12
    assert int(counts[~seen].sum()) == 0
    chi2 = float(((counts[seen] - n * p[seen]) ** 2 / (n * p[seen])).sum())
    df = int(seen.sum()) - 1
    assert abs(chi2 - df) < 4 * math.sqrt(2 * df)


def test_checkerboard_grid():
    q = discrete.checkerboard_grid(8)
    assert q.shape == (8, 8) and float(q.sum()) == pytest.approx(1.0)
    assert int((q > 0).sum()) == 32
    assert torch.equal(q[:2, :2] > 0, q[2:4, 2:4] > 0) and not torch.equal(q[:2, :2], q[2:4, :2])
    with pytest.raises(ValueError, match="multiple of 4"):
        discrete.checkerboard_grid(6)


def test_distances():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=f64)
    q = torch.tensor([0.25, 0.25, 0.5], dtype=f64)
    assert discrete.total_variation(p, q) == pytest.approx(0.5)
    assert discrete.kl_divergence(q, p) == math.inf
    assert discrete.kl_divergence(p, q) == pytest.approx(math.log(2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_values"):
        discrete.MixturePath(1)
    with pytest.raises(ValueError, match="source"):
        discrete.MixturePath(4, "gaussian")
    with pytest.raises(ValueError, match="power"):
        discrete.MixturePath(4, "mask", 0.0)
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\)"):
        discrete.MixturePath(4).rate_scale(1.0)
    with pytest.raises(ValueError, match="steps"):
        discrete.time_grid(0)


def test_posterior_model_shapes_and_kappa_input():
    path = discrete.MixturePath(4, "mask", 1.0)
    torch.manual_seed(0)
    model = discrete.PosteriorMLP(path, hidden=16)
    x = torch.tensor([[4, 1], [0, 4]])
    assert model(x, torch.tensor([0.2, 0.7])).shape == (2, 2, 4)
    post = model.posterior_fn()(x, 0.5)
    assert post.dtype == f64 and torch.allclose(post.sum(-1), torch.ones(2, 2, dtype=f64))


def test_mask_posterior_keeps_set_tokens_on_every_state():
    """A set token is its data value: delta_{x^i}, also where p_t(x) = 0 (Bayes is 0/0)."""
    q = discrete.checkerboard_grid(4)  # half the fully set states are off q's support
    path = discrete.MixturePath(4, "mask", 1.0)
    post = discrete.posterior(path, q, 0.5)
    delta = torch.eye(4, dtype=f64)
    for c, d in itertools.product(range(path.vocab), repeat=2):
        for i, value in enumerate((c, d)):
            if value < 4:
                assert torch.equal(post[c, d, i], delta[value])
    p_t = discrete.joint_marginal(path, q, 0.5)
    assert int((p_t == 0).sum()) == 8  # the off-support states exist
    # at a state off q's support, t = 0.5, h = 0.25, both set tokens stay (each stayed with
    # probability 0.5 + 0.5 / 4 when such states got the prior marginals)
    c, d = (p_t == 0).nonzero()[0].tolist()
    x = torch.tensor([[c, d]])
    step = discrete.euler_step_probs(path, x, post[c, d][None], 0.5, 0.25)
    assert step[0, 0, c] == 1 and step[0, 1, d] == 1


@pytest.mark.parametrize("q", [discrete.checkerboard_grid(4), _random_q(3, 11)])
def test_mask_source_euler_output_in_closed_form(q):
    """kappa_t = t: each token is set at a step uniform over the N steps, independently; set
    together (probability 1/N) they come from q^1 x q^2, else from q:
    p_N = q^1 x q^2 / N + (1 - 1/N) q exactly."""
    path = discrete.MixturePath(q.shape[0], "mask", 1.0)
    fn = discrete.exact_posterior_fn(path, q)
    product = torch.outer(q.sum(1), q.sum(0))
    for n in (1, 2, 3, 5, 8):
        expected = discrete.embed(path, product / n + (1 - 1 / n) * q)
        assert torch.allclose(discrete.euler_distribution(path, fn, n), expected, atol=1e-14)
    tv_product = discrete.total_variation(product, q)
    tv_8 = discrete.total_variation(
        discrete.euler_distribution(path, fn, 8), discrete.embed(path, q)
    )
    assert tv_8 == pytest.approx(tv_product / 8, abs=1e-14)
