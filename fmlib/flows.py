"""Change of variables, discrete normalizing flows, and a CNF known in closed form.

Notebook 01: p_X(x) = p_Z(f^{-1}(x)) |det J_{f^{-1}}(x)|, a stack of invertible layers
G_K o ... o G_1 whose log-determinants add up, and residual layers x + h u(x) that become
a continuous flow as h = 1/K -> 0. Notebook 02: `GaussianFlow`, the flow from N(0, I) to
N(m, s^2 I) along the OT path, where psi_t, u_t, div u_t and p_t are all known exactly.
Sources: Lipman et al. (2023) and Ye Yuan's presentation of it (seed 002).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from fmlib.checks import Field, check_int, check_range
from fmlib.divergence import jacobian


def _check_points(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.ndim != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape [N, d], got {shape}")


def _check_t(t: float) -> float:
    return check_range("t", float(t), 0.0, 1.0)


# ----------------------------------------------------------------------------------------
# Change of variables
# ----------------------------------------------------------------------------------------


def uniform_log_prob(z: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    """log pi(z) for pi = U[low, high]: -log(high - low) inside, -inf outside (any shape)."""
    if not high > low:
        raise ValueError(f"high must be > low = {low}, got {high}")
    inside = (z >= low) & (z <= high)
    log_p = torch.full_like(z, -math.log(high - low))
    return torch.where(inside, log_p, torch.full_like(z, -math.inf))


def log_abs_det(jac: Tensor) -> Tensor:
    """log |det J| for a batch of square matrices J: [N, d, d] -> [N]."""
    if jac.ndim != 3 or jac.shape[1] != jac.shape[2]:
        raise ValueError(f"jac must have shape [N, d, d], got {tuple(jac.shape)}")
    return torch.linalg.slogdet(jac).logabsdet


def pushforward_log_prob(
    log_p_z: Callable[[Tensor], Tensor], f_inverse: Callable[[Tensor], Tensor], x: Tensor
) -> Tensor:
    """log p_X(x) = log p_Z(f^{-1}(x)) + log |det J_{f^{-1}}(x)|, x: [N, d] -> [N].

    The change of variables theorem (seed 002: p(x') = pi(z') |det J_{f^{-1}}|); the Jacobian
    of the inverse map comes from autograd (`fmlib.divergence.jacobian`).
    """
    _check_points(x)
    z = f_inverse(x)
    jac = jacobian(lambda y, t: f_inverse(y), x, torch.zeros(x.shape[0], dtype=x.dtype))
    return log_p_z(z) + log_abs_det(jac)


def polygon_area(vertices: Tensor) -> Tensor:
    """Shoelace formula: area = 1/2 |sum_i (x_i y_{i+1} - x_{i+1} y_i)|, vertices: [M, 2]."""
    if vertices.ndim != 2 or vertices.shape[1] != 2 or vertices.shape[0] < 3:
        raise ValueError(f"vertices must have shape [M >= 3, 2], got {tuple(vertices.shape)}")
    x, y = vertices.unbind(dim=1)
    x_next, y_next = x.roll(-1), y.roll(-1)
    return 0.5 * (x * y_next - x_next * y).sum().abs()


def square_boundary(corner: Tensor, side: float, n: int = 50) -> Tensor:
    """The boundary of the square [a, a + side] x [b, b + side], counter-clockwise: [4n, 2]."""
    if side <= 0:
        raise ValueError(f"side must be > 0, got {side}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    s = torch.linspace(0, side, n + 1, dtype=corner.dtype)[:-1]
    zero, full = torch.zeros_like(s), torch.full_like(s, side)
    edges = [(s, zero), (full, s), (side - s, full), (zero, side - s)]
    return corner + torch.cat([torch.stack(e, dim=1) for e in edges])


# ----------------------------------------------------------------------------------------
# Discrete normalizing flows: invertible layers with their log-determinants
# ----------------------------------------------------------------------------------------


class AffineLayer:
    """G(z) = A z + b, log |det J_G| = log |det A| (the same at every z).

    A: [d, d] invertible, b: [d]. Inverse: z = A^{-1} (x - b).
    """

    def __init__(self, A: Tensor, b: Tensor) -> None:
        if A.ndim != 2 or A.shape[0] != A.shape[1] or b.shape != A.shape[:1]:
            raise ValueError(f"A must be [d, d] and b [d], got {tuple(A.shape)}, {tuple(b.shape)}")
        log_det = torch.linalg.slogdet(A).logabsdet
        if not torch.isfinite(log_det):
            raise ValueError("A must be invertible, got det A = 0")
        self.A, self.b, self.log_det = A, b, log_det

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(G(z) = A z + b, log |det A| repeated: [N])."""
        return z @ self.A.T + self.b, self.log_det.expand(z.shape[0]).to(z)

    def inverse(self, x: Tensor) -> Tensor:
        """G^{-1}(x) = A^{-1} (x - b)."""
        return torch.linalg.solve(self.A, (x - self.b).T).T


class CouplingLayer:
    """Affine coupling (RealNVP, Dinh et al. 2017) in 2D: one coordinate conditions the other.

    x_a = z_a,  x_b = z_b exp(s(z_a)) + c(z_a);  J is triangular, so
    log |det J_G| = s(z_a). Inverse: z_b = (x_b - c(x_a)) exp(-s(x_a)).
    (a, b) = (0, 1), or (1, 0) with `flip=True`. `scale` s and `shift` c map [N] -> [N].
    """

    def __init__(
        self, scale: Callable[[Tensor], Tensor], shift: Callable[[Tensor], Tensor], flip: bool
    ) -> None:
        self.scale, self.shift = scale, shift
        self.a, self.b = (1, 0) if flip else (0, 1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        _check_points(z, "z")
        z_a, z_b = z[:, self.a], z[:, self.b]
        s = self.scale(z_a)
        x = z.clone()
        x[:, self.b] = z_b * torch.exp(s) + self.shift(z_a)
        return x, s

    def inverse(self, x: Tensor) -> Tensor:
        x_a, x_b = x[:, self.a], x[:, self.b]
        z = x.clone()
        z[:, self.b] = (x_b - self.shift(x_a)) * torch.exp(-self.scale(x_a))
        return z


class ResidualLayer:
    """One residual step G(z) = z + h u_t(z): an Euler step of dx/dt = u_t(x).

    log |det J_G(z)| = log |det(I + h J_u(z))| (Jacobian by autograd). Invertible when
    h Lip(u) < 1: then z = x - h u_t(z) is a contraction in z and the fixed-point iteration
    z <- x - h u_t(z) converges to G^{-1}(x) (Behrmann et al., 2019, i-ResNets).
    """

    def __init__(self, u: Field, t: float, h: float, n_iter: int = 100) -> None:
        if not h > 0:
            raise ValueError(f"h must be > 0, got {h}")
        self.u, self.t, self.h, self.n_iter = u, float(t), float(h), n_iter

    def _u(self, z: Tensor) -> Tensor:
        return self.u(z, torch.full((z.shape[0],), self.t, dtype=z.dtype))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        _check_points(z, "z")
        t = torch.full((z.shape[0],), self.t, dtype=z.dtype)
        eye = torch.eye(z.shape[1], dtype=z.dtype)
        log_det = log_abs_det(eye + self.h * jacobian(self.u, z, t))
        return z + self.h * self._u(z), log_det

    def inverse(self, x: Tensor) -> Tensor:
        z = x.clone()
        for _ in range(self.n_iter):
            z = x - self.h * self._u(z)
        return z


class DiscreteFlow:
    """x = G_K o ... o G_1 (z): log p_K(x) = log pi(z) - sum_k log |det J_{G_k}(z_{k-1})|.

    Seed 002: p_K(x) = pi(z) |det J_{G_1^{-1}}| ... |det J_{G_K^{-1}}|, z = G_1^{-1}(...
    G_K^{-1}(x)); since det J_{G^{-1}} = 1 / det J_G, the log-determinants add up.
    """

    def __init__(self, layers: Sequence) -> None:
        if len(layers) == 0:
            raise ValueError("layers must hold at least one layer, got 0")
        self.layers = list(layers)

    def forward(self, z: Tensor, upto: int | None = None) -> tuple[Tensor, Tensor]:
        """(x_k, sum_{j <= k} log |det J_{G_j}|) after the first `upto` layers (default all)."""
        _check_points(z, "z")
        k = self._check_upto(upto)
        log_det = torch.zeros(z.shape[0], dtype=z.dtype)
        for layer in self.layers[:k]:
            z, ld = layer.forward(z)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, x: Tensor, upto: int | None = None) -> Tensor:
        """z = G_1^{-1}(... G_k^{-1}(x)) for k = `upto` (default all layers)."""
        _check_points(x)
        for layer in reversed(self.layers[: self._check_upto(upto)]):
            x = layer.inverse(x)
        return x

    def log_prob(
        self, x: Tensor, log_pi: Callable[[Tensor], Tensor], upto: int | None = None
    ) -> Tensor:
        """log p_k(x) = log pi(z) - sum_j log |det J_{G_j}(z_{j-1})|, z = preimage of x."""
        z = self.inverse(x, upto)
        _, log_det = self.forward(z, upto)
        return log_pi(z) - log_det

    def _check_upto(self, upto: int | None) -> int:
        k = len(self.layers) if upto is None else upto
        if not 0 <= k <= len(self.layers):
            raise ValueError(f"upto must be in [0, {len(self.layers)}], got {upto}")
        return k


# ----------------------------------------------------------------------------------------
# A continuous flow known in closed form: N(0, I) -> N(m, s^2 I)
# ----------------------------------------------------------------------------------------


class GaussianFlow:
    """The OT path from one Gaussian to another, optionally with a swirl of rate omega.

    sigma_t = 1 - t + t s,  mu_t = t m,  psi_t(x0) = sigma_t R(omega t) x0 + t m,
    u_t(x) = m + (s - 1) / sigma_t (x - t m) + omega J (x - t m),
    div u_t = d (s - 1) / sigma_t,  p_t = N(t m, sigma_t^2 I)   (x0 ~ N(0, I)).
    R(a) rotates by angle a in the (x^(1), x^(2)) plane and J = R'(0). With omega = 0 this is
    Lipman et al. (2023), eq. (20)-(22) with a single data point x1 = m and sigma_min = s;
    the swirl bends the straight trajectories (J is antisymmetric: it adds no divergence
    and leaves p_t unchanged). `GaussianFlow(m, s)(x, t)` is the field u_t(x).
    At sigma_t = 0 (s = 0, t = 1) the term (x - t m) / sigma_t is 0/0 on the support; we
    take it as 0 (never NaN), and div u_1 = -inf: p_1 is a point mass at m.
    """

    def __init__(self, m: Tensor, s: float, omega: float = 0.0) -> None:
        if m.ndim != 1:
            raise ValueError(f"m must be a vector [d], got shape {tuple(m.shape)}")
        if not (math.isfinite(s) and s >= 0):
            raise ValueError(f"s must be in [0, inf), got {s}")
        if not math.isfinite(omega) or (omega != 0 and m.shape[0] < 2):
            raise ValueError(f"omega must be finite, and 0 when d = 1, got {omega}")
        self.m, self.s, self.omega, self.d = m, float(s), float(omega), m.shape[0]

    def sigma_t(self, t: float) -> float:
        """sigma_t = 1 - (1 - s) t."""
        return 1.0 - (1.0 - self.s) * _check_t(t)

    def mu_t(self, t: float) -> Tensor:
        """mu_t = t m."""
        return _check_t(t) * self.m

    def _rotate(self, x: Tensor, angle: Tensor | float) -> Tensor:
        """R(angle) x in the (x^(1), x^(2)) plane; the other coordinates are untouched."""
        if self.omega == 0:
            return x
        angle = torch.as_tensor(angle, dtype=x.dtype)
        c, s = torch.cos(angle), torch.sin(angle)
        y = x.clone()
        y[:, 0] = c * x[:, 0] - s * x[:, 1]
        y[:, 1] = s * x[:, 0] + c * x[:, 1]
        return y

    def psi_t(self, x0: Tensor, t: float) -> Tensor:
        """psi_t(x0) = sigma_t R(omega t) x0 + t m."""
        _check_points(x0, "x0")
        t = _check_t(t)
        return self.sigma_t(t) * self._rotate(x0, self.omega * t) + t * self.m

    def psi_t_inverse(self, x: Tensor, t: float) -> Tensor:
        """psi_t^{-1}(x) = R(-omega t) (x - t m) / sigma_t (needs sigma_t > 0)."""
        _check_points(x)
        t = _check_t(t)
        if self.sigma_t(t) == 0:
            raise ValueError(f"t must be < 1 when s = 0 (psi_1 is not invertible), got {t}")
        return self._rotate((x - t * self.m) / self.sigma_t(t), -self.omega * t)

    def u_t(self, x: Tensor, t: Tensor | float) -> Tensor:
        """u_t(x) = m + (s - 1) / sigma_t (x - t m) + omega J (x - t m); x: [N, d], t: [N]."""
        _check_points(x)
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])[:, None]
        t_min, t_max = t.aminmax()
        if t_min < -1e-9 or t_max > 1 + 1e-9:
            raise ValueError(f"t must be in [0, 1], got values in [{t_min}, {t_max}]")
        t = t.clamp(0.0, 1.0)  # solvers may overshoot by a rounding error
        y = x - t * self.m
        sigma = 1 - (1 - self.s) * t
        radial = torch.where(sigma > 0, (self.s - 1) * y / sigma.clamp_min(1e-300), 0.0)
        swirl = torch.zeros_like(y)
        if self.omega != 0:
            swirl[:, 0], swirl[:, 1] = -self.omega * y[:, 1], self.omega * y[:, 0]
        return self.m + radial + swirl

    __call__ = u_t

    def div_u_t(self, x: Tensor, t: Tensor | float) -> Tensor:
        """div u_t(x) = d (s - 1) / sigma_t, the same at every x: [N] (-inf at sigma_t = 0)."""
        _check_points(x)
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]).clamp(0.0, 1.0)
        sigma = 1 - (1 - self.s) * t
        return self.d * (self.s - 1) / sigma

    def log_p_t(self, x: Tensor, t: float) -> Tensor:
        """log N(x | t m, sigma_t^2 I) = -|x - t m|^2 / (2 sigma_t^2) - d log(sqrt(2 pi) sigma_t).

        At sigma_t = 0 (a point mass): +inf at x = m, -inf elsewhere.
        """
        _check_points(x)
        t = _check_t(t)
        sigma = self.sigma_t(t)
        sq = ((x - t * self.m) ** 2).sum(dim=1)
        if sigma == 0:
            return torch.where(sq == 0, math.inf, -math.inf).to(x.dtype)
        return -0.5 * sq / sigma**2 - self.d * math.log(math.sqrt(2 * math.pi) * sigma)

    def sample(self, n: int, t: float, generator: torch.Generator | None = None) -> Tensor:
        """x_t = psi_t(x0), x0 ~ N(0, I): n samples of p_t, [n, d]."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        x0 = torch.randn(n, self.d, generator=generator, dtype=self.m.dtype)
        return self.psi_t(x0, t)

    def euler_std(self, steps: int) -> float:
        """Std of x_K after K = `steps` Euler (residual) steps x + h u_t(x), h = 1/K, from N(0, I).

        Each step maps y = x - t m linearly: y_{k+1} = (sigma_{k+1}/sigma_k I + h omega J) y_k,
        a scaled rotation by r_k = sqrt((sigma_{k+1}/sigma_k)^2 + (h omega)^2), so
        x_K ~ N(m, (prod_k r_k)^2 I) exactly. With omega = 0 the product telescopes to s:
        Euler is exact on straight trajectories. With a swirl it tends to s as K -> oo.
        """
        check_int("steps", steps)
        h = 1.0 / steps
        log_std = 0.0
        for k in range(steps):
            sig_k, sig_next = self.sigma_t(k * h), self.sigma_t((k + 1) * h)
            r = math.hypot(sig_next / sig_k, h * self.omega)
            if r == 0:
                return 0.0
            log_std += math.log(r)
        return math.exp(log_std)


# ----------------------------------------------------------------------------------------
# Histogram of pushed samples vs the density formula
# ----------------------------------------------------------------------------------------


def histogram_vs_density(
    x: Tensor, cdf: Callable[[Tensor], Tensor], edges: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(histogram density, expected density, standard error) in each bin [e_j, e_{j+1}).

    Expected: P_j / w_j with P_j = F(e_{j+1}) - F(e_j) from the formula's CDF F and bin width
    w_j. A bin count is Binomial(n, P_j), so the histogram density has standard error
    sqrt(P_j (1 - P_j) / n) / w_j: a correct formula puts |hist - expected| within a few
    standard errors in every bin.
    """
    if x.ndim != 1 or x.numel() < 1:
        raise ValueError(f"x must be a non-empty 1-D tensor of samples, got {tuple(x.shape)}")
    if edges.ndim != 1 or edges.numel() < 2 or not (edges.diff() > 0).all():
        raise ValueError("edges must be an increasing 1-D tensor with at least 2 entries")
    n, width = x.numel(), edges.diff()
    counts = torch.histogram(x.double().cpu(), edges.double().cpu()).hist.to(edges)
    prob = cdf(edges).diff()
    expected = prob / width
    std_err = torch.sqrt(prob * (1 - prob) / n) / width
    return counts / (n * width), expected, std_err


def normal_cdf(x: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Phi((x - mean) / std) = 1/2 (1 + erf((x - mean) / (std sqrt 2))); std = 0: a step."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    if std == 0:
        return (x >= mean).to(x.dtype)
    return 0.5 * (1 + torch.erf((x - mean) / (std * math.sqrt(2))))
