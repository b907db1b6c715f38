"""fmlib.data: densities integrate to 1, samplers match their densities, seeds reproduce."""

import math

import numpy as np
import pytest
import torch

from fmlib import data
from fmlib.plots import grid2d

DENSITIES = ("checkerboard", "eight_gaussians")


@pytest.mark.parametrize("name", data.DATASETS)
def test_same_seed_same_samples(name):
    a = data.sample(name, 500, torch.Generator().manual_seed(3))
    b = data.sample(name, 500, torch.Generator().manual_seed(3))
    c = data.sample(name, 500, torch.Generator().manual_seed(4))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", DENSITIES)
def test_density_integrates_to_one(name):
    lim, n = 5.0, 801
    _, _, pts = grid2d(lim, n)
    cell = (2 * lim / (n - 1)) ** 2
    mass = data.log_prob(name, pts.double()).exp().sum().item() * cell
    assert mass == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("name", DENSITIES)
def test_sampler_matches_density(name, generator):
    """Histogram of 200k samples on a coarse grid vs the density integrated per cell."""
    x = data.sample(name, 200_000, generator).double()
    lim, bins = 5.0, 10
    edges = torch.linspace(-lim, lim, bins + 1, dtype=torch.float64)
    hist = torch.histogramdd(x, bins=[edges, edges]).hist / len(x)
    # Expected mass per cell by a fine midpoint rule (20 x 20 points per cell).
    fine = 20 * bins
    h = 2 * lim / fine
    axis = -lim + h * (torch.arange(fine, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    dens = data.log_prob(name, torch.stack([xx.ravel(), yy.ravel()], 1)).exp().reshape(fine, fine)
    expected = dens.reshape(bins, 20, bins, 20).sum((1, 3)) * h * h
    se = (expected * (1 - expected) / len(x)).sqrt() + 1e-4
    assert ((hist - expected).abs() / se).max() < 6  # 6 sigma: fails for a wrong sampler


def test_checkerboard_support_and_entropy(generator):
    x = data.sample("checkerboard", 20_000, generator)
    assert data.in_checkerboard(x).all()
    assert data.checkerboard_entropy() == pytest.approx(math.log(8 / 0.45**2))
    assert data.checkerboard_entropy() == pytest.approx(3.6765, abs=1e-4)
    # Each of the 8 squares gets about 1/8 of the mass.
    squares = torch.floor(x * 0.45).long() + 2
    counts = torch.bincount(squares[:, 0] * 4 + squares[:, 1], minlength=16).float()
    assert (counts > 0).sum() == 8
    assert (counts[counts > 0] / len(x) - 1 / 8).abs().max() < 0.01
    outside = torch.tensor([[0.5, 1.5], [-10.0, 0.0]]) / 0.45
    assert not data.in_checkerboard(outside).any()
    assert torch.isinf(data.log_prob("checkerboard", outside)).all()


def test_eight_gaussians_means_on_circle():
    m = data.eight_gaussians_means()
    assert torch.allclose(m.norm(dim=1), torch.full((8,), 2.0))


def test_eight_gaussians_log_prob_float64():
    """float64 in, float64 accuracy out: against an independent numpy/scipy mixture density
    (means from cos/sin in float64). A float32 round trip of the means is off by ~4e-6."""
    import numpy as np
    from scipy.special import logsumexp

    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = 2.5 * x  # near and far from the modes
    log_q = data.log_prob("eight_gaussians", x)
    assert log_q.dtype == torch.float64
    angles = np.arange(8) * 2 * np.pi / 8
    means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    s2 = 0.2**2
    sq = ((x.numpy()[:, None, :] - means[None]) ** 2).sum(-1)
    expected = logsumexp(-0.5 * sq / s2 - np.log(2 * np.pi * s2), axis=1) - np.log(8)
    assert np.abs(log_q.numpy() - expected).max() < 1e-10
    m64 = data.eight_gaussians_means(torch.float64)
    assert m64.dtype == torch.float64
    assert np.abs(m64.numpy() - means).max() < 1e-15
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        data.eight_gaussians_means(torch.int64)


@pytest.mark.parametrize("name", ["moons", "spirals", "circles"])
def test_no_density_raises(name):
    with pytest.raises(ValueError, match="name must be one of checkerboard, eight_gaussians"):
        data.log_prob(name, torch.zeros(3, 2))


def test_bad_input():
    with pytest.raises(ValueError, match="name must be one of .*moons"):
        data.sample("swiss_roll", 10)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        data.sample("moons", 0)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \[N, 2\]"):
        data.log_prob("checkerboard", torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \[N, 2\]"):
        data.in_checkerboard(torch.zeros(3))


def test_checkerboard_mixture_moments_and_density():
    # Mean 0 and per-coordinate variance Var(q) + h^2 / 6, Var(q) = (4 a)^2 / 12 (a = 1/0.45).
    cells = 8
    q = data.checkerboard_mixture(cells=cells)
    assert q.means.shape == (8 * cells**2, 2)
    h = data.CHECKER_SCALE / cells
    var = (4 * data.CHECKER_SCALE) ** 2 / 12 + h**2 / 6
    exact_var = q.means.var(0, unbiased=False) + q.stds[0] ** 2  # between + within cells
    torch.testing.assert_close(q.means.mean(0), torch.zeros(2), rtol=0, atol=1e-5)
    np.testing.assert_allclose(exact_var.numpy(), [var, var], rtol=1e-5)
    # Inside a dark square the density is flat, ~ q = 0.45^2 / 8 (at a cell centre and at a
    # cell corner alike); in the middle of a light square it is ~0.
    a = data.CHECKER_SCALE
    inside = torch.tensor([[0.5, 0.5], [0.5 + 0.5 / cells, 0.5], [-1.5, -1.5]]) * a
    np.testing.assert_allclose(q.log_prob(inside).exp().numpy(), 0.45**2 / 8, rtol=0.04)
    light = torch.tensor([[-0.5, 0.5], [1.5, 0.5]]) * a
    assert (q.log_prob(light).exp() < 1e-3 * 0.45**2 / 8).all()
    # And it agrees with data.in_checkerboard on which squares are dark.
    assert data.in_checkerboard(inside).all() and not data.in_checkerboard(light).any()


def test_checkerboard_mixture_rejects_bad_cells():
    with pytest.raises(ValueError, match="cells"):
        data.checkerboard_mixture(0)


def test_eight_gaussians_mixture_is_the_samplers_law():
    q = data.eight_gaussians_mixture()
    assert q.means.dtype == torch.float64
    assert torch.equal(q.means, data.eight_gaussians_means().double())  # the sampler's means
    assert torch.all(q.stds == data.EIGHT_GAUSSIANS_STD)
    x = data.sample_eight_gaussians(50, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(q.log_prob(x), data.eight_gaussians_log_prob(x), atol=1e-5, rtol=0)
