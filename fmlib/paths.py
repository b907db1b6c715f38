"""Affine Gaussian conditional probability paths (Lipman et al. 2023, section 4).

Course convention: t = 0 is the source (noise, x0 ~ N(0, I)), t = 1 the data (x1 ~ q).
Every path here is affine in (x0, x1):

    x_t = psi_t(x0 | x1) = alpha_t x1 + sigma_t x0,     mu_t(x1) = alpha_t x1,
    p_t(x | x1) = N(x | mu_t(x1), sigma_t^2 I),
    u_t(x | x1) = sigma_t' / sigma_t (x - mu_t(x1)) + mu_t'(x1)          (eq. 15),
    CFM regression target = d/dt psi_t(x0 | x1) = alpha_t' x1 + sigma_t' x0.

Times `t` may be a Python float, a 0-d tensor or a tensor of shape [N] (one time per row
of x: [N, d]); they must lie in [0, 1]. Values within 1e-6 outside (solver round-off)
are clamped onto [0, 1]; anything further raises ValueError.

Where sigma_t = 0 (OT with sigma_min = 0 at t = 1, VP at t = 1) the conditional field is
singular off the point x = mu_t. We never return NaN or inf: each formula divides by a
*safe denominator* (1 where the true one is 0) and the docstrings say what that returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from fmlib.checks import check_range

Time = float | Tensor
_T_TOL = 1e-6  # solver round-off tolerated (and clamped) outside [0, 1]


def as_time(t: Time, like: Tensor | None = None) -> Tensor:
    """Return t as a floating tensor in [0, 1] (dtype/device of `like` when given).

    Raises ValueError("t must be in [0, 1], got v") for values outside [0, 1] (beyond a
    1e-6 round-off tolerance, which is clamped) and for NaN.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float, Tensor)):
        raise ValueError(f"t must be a float or a tensor with values in [0, 1], got {t!r}")
    floating = like is not None and like.is_floating_point()
    if not isinstance(t, Tensor):  # a Python number: checked without tensor ops (solver loops)
        if not -_T_TOL <= t <= 1 + _T_TOL:  # also catches NaN
            raise ValueError(f"t must be in [0, 1], got {t:g}")
        dtype = like.dtype if floating else torch.get_default_dtype()
        device = like.device if like is not None else None
        return torch.tensor(min(max(float(t), 0.0), 1.0), dtype=dtype, device=device)
    if floating:
        t = t.to(dtype=like.dtype, device=like.device)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    inside = (t >= -_T_TOL) & (t <= 1 + _T_TOL)  # False for NaN
    if not bool(inside.all()):
        raise ValueError(f"t must be in [0, 1], got {t[~inside].flatten()[0].item():g}")
    return t.clamp(0.0, 1.0)


def _batch_time(t: Time, x: Tensor) -> Tensor:
    """t for a batch x: [N, ...]: a 0-d tensor or shape [N] ([N, 1] is accepted)."""
    t = as_time(t, like=x)
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] not in (1, x.shape[0])):
        raise ValueError(
            f"t must be a scalar or have shape [N] = [{x.shape[0]}], got shape {tuple(t.shape)}"
        )
    return t


def _col(c: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample coefficient c: [N] (or 0-d) to broadcast against x: [N, ...]."""
    return c if c.dim() == 0 else c.reshape(-1, *([1] * (x.dim() - 1)))


def _same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def _safe(den: Tensor) -> Tensor:
    """The safe denominator: den where den != 0, and 1 where den == 0."""
    return torch.where(den == 0, torch.ones_like(den), den)


class GaussianPath:
    """Base class: x_t = alpha_t x1 + sigma_t x0, p_t(x | x1) = N(alpha_t x1, sigma_t^2 I).

    Subclasses define the schedule on tensors: `_alpha`, `_sigma`, `_d_alpha`, `_d_sigma`
    (and may override `_sigma_d_sigma` = sigma_t sigma_t' where sigma_t' alone blows up).
    The public methods below validate t and broadcast a [N] time against x: [N, d].
    """

    # --- the schedule (tensors in, tensors out); subclasses implement these ---
    def _alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _d_alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _d_sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _sigma_d_sigma(self, t: Tensor) -> Tensor:
        return self._sigma(t) * self._d_sigma(t)

    # --- the schedule, public: t is a float, a 0-d tensor or [N] ---
    def alpha_t(self, t: Time) -> Tensor:
        """alpha_t, the weight of x1 (alpha_0 = 0, alpha_1 = 1 for a true noise->data path)."""
        return self._alpha(as_time(t))

    def sigma_t(self, t: Time) -> Tensor:
        """sigma_t, the std of p_t(x | x1) (sigma_0 = 1, sigma_1 = sigma_min)."""
        return self._sigma(as_time(t))

    def d_alpha_t(self, t: Time) -> Tensor:
        """alpha_t' = d alpha_t / dt."""
        return self._d_alpha(as_time(t))

    def d_sigma_t(self, t: Time) -> Tensor:
        """sigma_t' = d sigma_t / dt."""
        return self._d_sigma(as_time(t))

    def sigma_d_sigma_t(self, t: Time) -> Tensor:
        """sigma_t sigma_t' = (1/2) d(sigma_t^2)/dt: finite even where sigma_t' is not (VP)."""
        return self._sigma_d_sigma(as_time(t))

    # --- the path ---
    def mu_t(self, x1: Tensor, t: Time) -> Tensor:
        """mu_t(x1) = alpha_t x1. x1: [N, d], t: [N] or scalar -> [N, d]."""
        t = _batch_time(t, x1)
        return _col(self._alpha(t), x1) * x1

    def d_mu_t(self, x1: Tensor, t: Time) -> Tensor:
        """mu_t'(x1) = alpha_t' x1."""
        t = _batch_time(t, x1)
        return _col(self._d_alpha(t), x1) * x1

    def psi_t(self, x0: Tensor, x1: Tensor, t: Time) -> Tensor:
        """psi_t(x0 | x1) = alpha_t x1 + sigma_t x0 (Lipman et al. 2023, eq. 11).

        With x0 ~ N(0, I) this is a sample of p_t(x | x1). x0, x1: [N, d]; t: [N] or scalar.
        """
        _same_shape(x0, x1, "x0", "x1")
        t = _batch_time(t, x1)
        return _col(self._alpha(t), x1) * x1 + _col(self._sigma(t), x0) * x0

    def sample(self, x0: Tensor, x1: Tensor, t: Time) -> Tensor:
        """x_t ~ p_t(x | x1): an alias of psi_t(x0 | x1) (pass x0 ~ N(0, I))."""
        return self.psi_t(x0, x1, t)

    def u_t(self, x: Tensor, x1: Tensor, t: Time) -> Tensor:
        """u_t(x | x1) = sigma_t'/sigma_t (x - mu_t(x1)) + mu_t'(x1) (Lipman et al., eq. 15).

        Computed as sigma_t sigma_t' (x - mu_t) / sigma_t^2 + alpha_t' x1, so that only the
        finite product sigma_t sigma_t' is needed. Where sigma_t = 0 the field is singular
        off x = mu_t; there we divide by 1 instead of sigma_t^2 (safe denominator) and
        return sigma_t sigma_t' (x - mu_t) + mu_t', which at x = mu_t is mu_t' = alpha_t' x1:
        the mean, over x0, of the velocities alpha_t' x1 + sigma_t' x0 of all the paths
        that meet there. Never NaN. x, x1: [N, d] (or any [N, ...]); t: [N] or scalar.
        """
        _same_shape(x, x1, "x", "x1")
        t = _batch_time(t, x)
        mu = _col(self._alpha(t), x1) * x1
        var = _safe(self._sigma(t) ** 2)
        return _col(self._sigma_d_sigma(t) / var, x) * (x - mu) + _col(self._d_alpha(t), x1) * x1

    def target(self, x0: Tensor, x1: Tensor, t: Time) -> Tensor:
        """CFM regression target d/dt psi_t(x0 | x1) = alpha_t' x1 + sigma_t' x0 (eq. 14)."""
        _same_shape(x0, x1, "x0", "x1")
        t = _batch_time(t, x1)
        return _col(self._d_alpha(t), x1) * x1 + _col(self._d_sigma(t), x0) * x0

    def log_prob(self, x: Tensor, x1: Tensor, t: Time) -> Tensor:
        """log p_t(x | x1) = log N(x | alpha_t x1, sigma_t^2 I). x, x1: [N, d] -> [N].

        Raises ValueError where sigma_t = 0 (a point mass has no density).
        """
        _same_shape(x, x1, "x", "x1")
        t = _batch_time(t, x)
        sigma = self._sigma(t)
        if (sigma == 0).any():
            raise ValueError("sigma_t must be > 0 for a density, got sigma_t = 0 at this t")
        d = x[0].numel()
        sq = ((x - _col(self._alpha(t), x1) * x1) ** 2).flatten(1).sum(1)
        return -sq / (2 * sigma**2) - d * torch.log(sigma) - d / 2 * math.log(2 * math.pi)


class OTPath(GaussianPath):
    """Optimal-transport (linear) path: alpha_t = t, sigma_t = 1 - (1 - sigma_min) t.

    psi_t(x0 | x1) = (1 - (1 - sigma_min) t) x0 + t x1; target x1 - (1 - sigma_min) x0.
    Lipman et al. (2023), eqs. (20)-(23). sigma_min = 0 is rectified flow / linear
    interpolation; then sigma_1 = 0 and the path ends exactly on x1.
    """

    def __init__(self, sigma_min: float = 0.0) -> None:
        self.sigma_min = check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)

    def _alpha(self, t: Tensor) -> Tensor:
        return t

    def _sigma(self, t: Tensor) -> Tensor:
        return 1 - (1 - self.sigma_min) * t

    def _d_alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -(1 - self.sigma_min))

    def u_t(self, x: Tensor, x1: Tensor, t: Time) -> Tensor:
        """u_t(x | x1) = (x1 - (1 - sigma_min) x) / (1 - (1 - sigma_min) t). Eq. (21).

        At t = 1 with sigma_min = 0 the denominator vanishes; there the path has already
        reached x1 and we return x1 - x (denominator 1: the safe denominator), never NaN.
        """
        _same_shape(x, x1, "x", "x1")
        t = _batch_time(t, x)
        return (x1 - (1 - self.sigma_min) * x) / _col(_safe(self._sigma(t)), x)

    def __repr__(self) -> str:
        return f"OTPath(sigma_min={self.sigma_min})"


def ot_conditional_velocity(x: Tensor, x1: Tensor, t: Time, sigma_min: float = 0.0) -> Tensor:
    """u_t(x | x1) = (x1 - (1 - sigma_min) x) / (1 - (1 - sigma_min) t).

    Lipman et al. (2023), eq. (21). At t = 1 with sigma_min = 0 the denominator
    vanishes; there the path has already reached x1, and we return x1 - x (the limit
    along the path), never NaN. Same as OTPath(sigma_min).u_t(x, x1, t).
    """
    return OTPath(sigma_min).u_t(x, x1, t)


class VPPath(GaussianPath):
    """Variance-preserving (diffusion) path, Lipman et al. (2023) eqs. (18)-(19).

    beta(r) = beta_min + r (beta_max - beta_min), T(s) = int_0^s beta(r) dr,
    a(s) = exp(-T(s)/2);  alpha_t = a(1 - t),  sigma_t = sqrt(1 - a(1 - t)^2),
    u_t(x | x1) = a'(1 - t) / (1 - a(1 - t)^2) (a(1 - t) x - x1).

    Time: the paper (and this course) runs noise -> data as t: 0 -> 1, the reverse of
    score-based diffusion papers (Song et al.), whose time s = 1 - t runs data -> noise.
    Boundary: alpha_1 = 1, sigma_1 = 0 exactly; alpha_0 = a(1) = exp(-T(1)/2) is only
    approximately 0 (about 0.0066 with the defaults), so p_0 is only approximately N(0, I).
    At t = 1, sigma_t' = -alpha_t alpha_t'/sigma_t is -inf (square-root singularity);
    d_sigma_t returns the safe-denominator value -alpha_t alpha_t' there, and u_t (eq. 15
    in the base class) stays finite. t = 1 has probability 0 under t ~ U[0, 1).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        if not beta_min >= 0:
            raise ValueError(f"beta_min must be in [0, beta_max], got {beta_min}")
        if not beta_max > 0 or beta_max < beta_min:
            raise ValueError(f"beta_max must be in (0, inf) and >= beta_min, got {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, s: Tensor) -> Tensor:
        """beta(s) = beta_min + s (beta_max - beta_min), in diffusion time s = 1 - t."""
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def big_t(self, s: Tensor) -> Tensor:
        """T(s) = int_0^s beta(r) dr = beta_min s + (beta_max - beta_min) s^2 / 2."""
        return self.beta_min * s + (self.beta_max - self.beta_min) * s**2 / 2

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-self.big_t(1 - t) / 2)  # a(1 - t)

    def _sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(-torch.expm1(-self.big_t(1 - t)))  # sqrt(1 - a(1 - t)^2)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return self.beta(1 - t) / 2 * self._alpha(t)  # -a'(1 - t), a'(s) = -beta(s) a(s) / 2

    def _sigma_d_sigma(self, t: Tensor) -> Tensor:
        return -self._alpha(t) * self._d_alpha(t)  # from sigma_t^2 = 1 - alpha_t^2

    def _d_sigma(self, t: Tensor) -> Tensor:
        return self._sigma_d_sigma(t) / _safe(self._sigma(t))

    def __repr__(self) -> str:
        return f"VPPath(beta_min={self.beta_min}, beta_max={self.beta_max})"


class VEPath(GaussianPath):
    """Variance-exploding path, Lipman et al. (2023) eqs. (16)-(17), in this course's time.

    s_r = s_min (s_max / s_min)^r (geometric, r in [0, 1]);  mu_t = x1 (alpha_t = 1),
    sigma_t = s_{1-t};  u_t(x | x1) = -(s'_{1-t} / s_{1-t}) (x - x1)
    = -log(s_max / s_min) (x - x1).
    Boundary: sigma_1 = s_min (approximately 0) and alpha_0 = 1, not 0: the source
    p_0(x | x1) = N(x1, s_max^2 I) is only approximately noise (s_max = 5 suits 2D data
    of scale ~4; images use ~80).
    """

    def __init__(self, s_min: float = 0.01, s_max: float = 5.0) -> None:
        if not s_min > 0:
            raise ValueError(f"s_min must be in (0, s_max), got {s_min}")
        if not s_max > s_min or math.isinf(s_max):
            raise ValueError(f"s_max must be in (s_min, inf) = ({s_min}, inf), got {s_max}")
        self.s_min, self.s_max = float(s_min), float(s_max)
        self.log_ratio = math.log(self.s_max / self.s_min)

    def s(self, r: Tensor) -> Tensor:
        """s_r = s_min (s_max / s_min)^r."""
        return self.s_min * torch.exp(r * self.log_ratio)

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _sigma(self, t: Tensor) -> Tensor:
        return self.s(1 - t)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return -self.log_ratio * self.s(1 - t)  # -s'_{1-t}

    def __repr__(self) -> str:
        return f"VEPath(s_min={self.s_min}, s_max={self.s_max})"


Schedule = Callable[[Tensor], Tensor]


def _evaluate(f: Schedule, t: Tensor) -> Tensor:
    return torch.as_tensor(f(t), dtype=t.dtype, device=t.device).expand_as(t)


def _derivative(f: Schedule, t: Tensor) -> Tensor:
    """d f / dt elementwise, by autograd (keeps the graph when t itself requires grad)."""
    with torch.enable_grad():
        tt = t if t.requires_grad else t.detach().requires_grad_(True)
        y = _evaluate(f, tt)
        if not y.requires_grad:
            return torch.zeros_like(t)
        (g,) = torch.autograd.grad(y.sum(), tt, create_graph=t.requires_grad, allow_unused=True)
    return torch.zeros_like(t) if g is None else g


class AffinePath(GaussianPath):
    """Any affine path x_t = alpha_t x1 + sigma_t x0 from user schedules (callables of t).

    Requires alpha(0) = 0, alpha(1) = 1, sigma(0) = 1, sigma(1) >= 0 (checked to 1e-6).
    d_alpha / d_sigma default to autograd derivatives of alpha / sigma. The schedules
    must act elementwise on a tensor t. See `cosine_path()` for an example.
    """

    def __init__(
        self,
        alpha: Schedule,
        sigma: Schedule,
        d_alpha: Schedule | None = None,
        d_sigma: Schedule | None = None,
        name: str | None = None,
    ) -> None:
        self.alpha, self.sigma, self.d_alpha, self.d_sigma = alpha, sigma, d_alpha, d_sigma
        self.name = name
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        a0, a1 = _evaluate(alpha, ends).tolist()
        s0, s1 = _evaluate(sigma, ends).tolist()
        for label, value, want in (("alpha(0)", a0, 0.0), ("alpha(1)", a1, 1.0)):
            if not abs(value - want) <= 1e-6:
                raise ValueError(f"{label} must be {want:g}, got {value:g}")
        if not abs(s0 - 1.0) <= 1e-6:
            raise ValueError(f"sigma(0) must be 1, got {s0:g}")
        if not s1 >= 0:
            raise ValueError(f"sigma(1) must be >= 0, got {s1:g}")

    def _alpha(self, t: Tensor) -> Tensor:
        return _evaluate(self.alpha, t)

    def _sigma(self, t: Tensor) -> Tensor:
        return _evaluate(self.sigma, t)

    def _d_alpha(self, t: Tensor) -> Tensor:
        if self.d_alpha is None:
            return _derivative(self.alpha, t)
        return _evaluate(self.d_alpha, t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        if self.d_sigma is None:
            return _derivative(self.sigma, t)
        return _evaluate(self.d_sigma, t)

    def __repr__(self) -> str:
        if self.name is not None:
            return f"AffinePath(name={self.name!r})"
        names = [getattr(f, "__qualname__", type(f).__name__) for f in (self.alpha, self.sigma)]
        return f"AffinePath(alpha={names[0]}, sigma={names[1]})"


def cosine_path() -> AffinePath:
    """Cosine schedule: alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2) = sin(pi (1 - t) / 2).

    alpha_t^2 + sigma_t^2 = 1 (variance preserving for unit-variance data); sigma is written
    as sin(pi (1 - t) / 2) so that sigma_1 is exactly 0 in floating point.
    """
    h = math.pi / 2
    return AffinePath(
        alpha=lambda t: torch.sin(h * t),
        sigma=lambda t: torch.sin(h * (1 - t)),
        d_alpha=lambda t: h * torch.cos(h * t),
        d_sigma=lambda t: -h * torch.cos(h * (1 - t)),
        name="cosine",
    )


PATH_NAMES = ("OT", "cosine", "VP", "VE")  # the paths of notebook 07, by name
VE_S_MIN = 0.01  # VE's final noise level sigma_1 = s_min (> 0: its field has log(s_max/s_min))


def make_path(name: str, sigma_min: float = 0.0) -> GaussianPath:
    """The path called `name` (one of PATH_NAMES); sigma_min in [0, 1) sets sigma_1 of OT
    only. Cosine and VP end at sigma_1 = 0 by construction, VE at its own s_min = VE_S_MIN
    (its field needs s_min > 0), whatever sigma_min."""
    if name not in PATH_NAMES:
        raise ValueError(f"path must be one of {', '.join(PATH_NAMES)}, got {name!r}")
    sigma_min = check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)
    if name == "OT":
        return OTPath(sigma_min)
    if name == "cosine":
        return cosine_path()
    if name == "VP":
        return VPPath()
    return VEPath(s_min=VE_S_MIN)
