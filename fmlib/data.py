"""Two-dimensional targets q(x1): deterministic samplers and exact log-densities.

Every sampler takes a `torch.Generator`, so the same seed gives the same samples on
every machine. Where the density is known in closed form (`checkerboard`,
`eight_gaussians`), `log_prob` returns it exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fmlib.checks import check_int
from fmlib.marginal import GaussianMixture

DATASETS = ("checkerboard", "eight_gaussians", "moons", "spirals", "circles")

# The Flow Matching Guide's 2D checkerboard: alternate unit squares of [-2, 2]^2
# (8 of the 16), scaled by 1 / 0.45, so each square has side 1 / 0.45.
CHECKER_SCALE = 1 / 0.45
CHECKER_AREA = 8 * CHECKER_SCALE**2  # total area of the support
EIGHT_GAUSSIANS_RADIUS = 2.0
EIGHT_GAUSSIANS_STD = 0.2


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")


def _check_n(n: int) -> None:
    check_int("n", n)


def _check_points(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape [N, 2], got {shape}")


def sample_checkerboard(n: int, generator: torch.Generator | None = None) -> Tensor:
    """x1 ~ uniform on the 8 dark squares of a 4x4 board on [-2, 2]^2, scaled by 1/0.45.

    Draw u ~ U[-2, 2) and v0 ~ U([-2, -1) ∪ [0, 1)) (an even row); shifting v0 up by one
    row on odd columns, v = v0 + (floor(u) mod 2), makes floor(u) + floor(v) even: the
    dark squares. Density 1 / (8 (1/0.45)^2) on the support.
    """
    _check_n(n)
    u = 4 * torch.rand(n, generator=generator) - 2
    v = torch.rand(n, generator=generator) - 2 + 2 * torch.randint(0, 2, (n,), generator=generator)
    v = v + (torch.floor(u) % 2)  # shift by one square on odd columns: a checkerboard
    return torch.stack([u, v], dim=1) * CHECKER_SCALE


def in_checkerboard(x: Tensor) -> Tensor:
    """Indicator of the checkerboard's support: |x| <= 2/0.45 and floor(u) + floor(v) even."""
    _check_points(x)
    u, v = (x / CHECKER_SCALE).unbind(dim=1)
    inside = (u.abs() <= 2) & (v.abs() <= 2)
    return inside & ((torch.floor(u) + torch.floor(v)) % 2 == 0)


def checkerboard_log_prob(x: Tensor) -> Tensor:
    """log q(x) = -log(8 / 0.45^2) on the support, -inf outside (uniform density)."""
    log_q = torch.full(x.shape[:1], -math.log(CHECKER_AREA), dtype=x.dtype, device=x.device)
    return torch.where(in_checkerboard(x), log_q, torch.full_like(log_q, -math.inf))


def checkerboard_mixture(cells: int = 8) -> GaussianMixture:
    """q ≈ (1/K) sum_k N(m_k, s^2 I): each of the 8 squares of side a = 1/0.45 is cut into
    cells x cells sub-squares of side h = a / cells, with m_k their centres and s = h / 2.

    With s = h / 2 the bumps of the grid of Gaussians merge: inside a square the density is
    flat to about 2 exp(-2 pi^2 s^2 / h^2) ≈ 1.4 %; the edges are blurred over ~h, and the
    variance per coordinate is Var(q) + h^2 / 6. The closed-form marginal field of
    fmlib.marginal needs a Gaussian mixture (notebook 05's loss floor); as cells grows it
    converges to q.
    """
    check_int("cells", cells)
    a = CHECKER_SCALE
    h = a / cells
    centres = (torch.arange(cells) + 0.5) * h
    blocks = []
    for i in range(-2, 2):
        for j in range(-2, 2):
            if (i + j) % 2 == 0:  # the dark squares: floor(u) + floor(v) even
                yy, xx = torch.meshgrid(j * a + centres, i * a + centres, indexing="ij")
                blocks.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))
    return GaussianMixture(torch.cat(blocks), stds=h / 2)


def checkerboard_entropy() -> float:
    """H(q) = log(area of the support) = log(8 / 0.45^2) ≈ 3.6765 nats (uniform density)."""
    return math.log(CHECKER_AREA)


def eight_gaussians_means(dtype: torch.dtype = torch.float32) -> Tensor:
    """Means m_k = r (cos 2πk/8, sin 2πk/8), k = 0..7, r = 2, in `dtype`.

    Computed in float64 and rounded once to `dtype`: float32 for the samplers (the data
    are float32), float64 for exact densities (a float32 round trip costs ~4e-6 in log q).
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = EIGHT_GAUSSIANS_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)
    return means.to(dtype)


def eight_gaussians_mixture() -> GaussianMixture:
    """q = the eight Gaussians as a float64 GaussianMixture (fmlib.marginal's closed forms):
    the means are the sampler's float32 means, so q is exactly the law `sample` draws from."""
    return GaussianMixture(eight_gaussians_means().double(), EIGHT_GAUSSIANS_STD)


def sample_eight_gaussians(n: int, generator: torch.Generator | None = None) -> Tensor:
    """x1 = m_k + 0.2 eps, k ~ U{0..7}, eps ~ N(0, I)."""
    _check_n(n)
    k = torch.randint(0, 8, (n,), generator=generator)
    eps = torch.randn(n, 2, generator=generator)
    return eight_gaussians_means()[k] + EIGHT_GAUSSIANS_STD * eps


def eight_gaussians_log_prob(x: Tensor) -> Tensor:
    """log q(x) = logsumexp_k [log(1/8) + log N(x | m_k, 0.2^2 I)], in x's precision.

    The means are made in x's dtype (float64 input: float64 throughout, never a float32
    round trip)."""
    _check_points(x)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    means = eight_gaussians_means(dtype).to(x)
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # [N, 8]
    s2 = EIGHT_GAUSSIANS_STD**2
    log_n = -0.5 * sq / s2 - math.log(2 * math.pi * s2)
    return torch.logsumexp(log_n, dim=1) - math.log(8)


def sample_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> Tensor:
    """Two interleaved half circles (upper: (cos a, sin a), lower: (1 - cos a, 0.5 - sin a)),
    centred and scaled by 2, plus N(0, noise^2) jitter."""
    _check_n(n)
    a = math.pi * torch.rand(n, generator=generator)
    lower = torch.randint(0, 2, (n,), generator=generator).bool()
    upper_pts = torch.stack([a.cos(), a.sin()], dim=1)
    lower_pts = torch.stack([1 - a.cos(), 0.5 - a.sin()], dim=1)
    x = torch.where(lower[:, None], lower_pts, upper_pts) - torch.tensor([0.5, 0.25])
    return 2 * x + noise * torch.randn(n, 2, generator=generator)


def sample_spirals(n: int, generator: torch.Generator | None = None, noise: float = 0.1) -> Tensor:
    """Two interleaved Archimedean spirals r = θ, θ ~ sqrt(U) 3π (denser near the centre),
    scaled by 1/3, plus N(0, noise^2) jitter."""
    _check_n(n)
    theta = torch.rand(n, generator=generator).sqrt() * 3 * math.pi
    sign = 2 * torch.randint(0, 2, (n,), generator=generator) - 1
    x = sign[:, None] * torch.stack([theta * theta.cos(), theta * theta.sin()], dim=1) / 3
    return x + noise * torch.randn(n, 2, generator=generator)


def sample_circles(n: int, generator: torch.Generator | None = None, noise: float = 0.05) -> Tensor:
    """Two concentric circles of radii 1 and 2.5 (points split by circumference), plus jitter."""
    _check_n(n)
    a = 2 * math.pi * torch.rand(n, generator=generator)
    r = torch.where(torch.rand(n, generator=generator) < 1 / 3.5, 1.0, 2.5)
    x = r[:, None] * torch.stack([a.cos(), a.sin()], dim=1)
    return x + noise * torch.randn(n, 2, generator=generator)


_SAMPLERS = {
    "checkerboard": sample_checkerboard,
    "eight_gaussians": sample_eight_gaussians,
    "moons": sample_moons,
    "spirals": sample_spirals,
    "circles": sample_circles,
}
_LOG_PROBS = {"checkerboard": checkerboard_log_prob, "eight_gaussians": eight_gaussians_log_prob}


def sample(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n samples x1 ~ q of the named 2D target, shape [n, 2], float32 on the CPU."""
    _check_name(name)
    return _SAMPLERS[name](n, generator)


def log_prob(name: str, x: Tensor) -> Tensor:
    """Exact log q(x) of the named target, shape [N] (checkerboard and eight_gaussians only)."""
    _check_name(name)
    if name not in _LOG_PROBS:
        raise ValueError(
            f"name must be one of {', '.join(_LOG_PROBS)} for log_prob (no closed-form "
            f"density for {name!r})"
        )
    _check_points(x)
    return _LOG_PROBS[name](x)


# sklearn's handwritten digits (notebook 14): 1797 images of 8 x 8 pixels, each pixel an
# integer 0..16 (the count of "on" cells in a 4 x 4 block of a 32 x 32 bitmap), ten classes.
DIGITS_SIDE = 8
DIGITS_DIM = DIGITS_SIDE**2
DIGITS_LEVELS = 17  # pixel values 0, 1, ..., 16
DIGITS_BIN = 2 / DIGITS_LEVELS  # the width of one pixel value after `scale_pixels`


def digits_split(held_out: float = 0.2, seed: int = 0) -> dict[str, Tensor]:
    """sklearn.datasets.load_digits split into training and held-out digits, stratified by
    class (sklearn's train_test_split, random_state=seed; no download: the data ship with
    scikit-learn). -> {"train", "held_out"}: integer pixels [N, 64] (int64, 0..16), and
    {"train_labels", "held_out_labels"}: [N] (int64, 0..9)."""
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be in (0, 1), got {held_out}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_tr, x_ho, y_tr, y_ho = train_test_split(
        digits.data, digits.target, test_size=held_out, stratify=digits.target, random_state=seed
    )
    as_long = lambda a: torch.as_tensor(a).long()
    return {
        "train": as_long(x_tr),
        "held_out": as_long(x_ho),
        "train_labels": as_long(y_tr),
        "held_out_labels": as_long(y_ho),
    }


def scale_pixels(v: Tensor) -> Tensor:
    """x = 2 v / 17 - 1: pixel values v in [0, 17) to x in [-1, 1) (float32)."""
    return 2 * v.float() / DIGITS_LEVELS - 1


def dequantize(pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x = scale_pixels(k + u), u ~ U[0, 1)^64 fresh per call: integer pixels k -> a density.

    Uniform dequantisation (Uria et al. 2013; Theis et al. 2016): the integers have no
    density in R^64, k + u has one, and for any density p on x, with bins of width
    DIGITS_BIN, log P(k) >= E_u log p(x) + 64 log DIGITS_BIN (Jensen): bits per
    dimension computed from p bound those of the discrete pixels from above.
    """
    return scale_pixels(pixels + torch.rand(pixels.shape, generator=generator))


def pixel_centres(pixels: Tensor) -> Tensor:
    """x = scale_pixels(k + 1/2): each integer pixel at the centre of its bin."""
    return scale_pixels(pixels + 0.5)
