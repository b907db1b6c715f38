"""Neural velocity fields u_theta(x, t): small MLPs for 2D flow matching.

A model is a *field*: `model(x: [N, d], t: [N]) -> [N, d]`, with t = 0 the noise and
t = 1 the data. The constructor's arguments are stored in `model.config`, so that
`save(model, path)` / `load(path)` rebuild the same network from a plain dict and a
state dict (loadable with `torch.load(weights_only=True)`).

Two flavours, one class:
- the Flow Matching Guide's reference network (Lipman et al. 2024, 2D example):
  `MLP(hidden=512, layers=4, time_embedding="raw")`, i.e. [x, t] -> 4 x (Linear, SiLU)
  -> Linear;
- the CPU recipe (see `fmlib.training.Recipe`): a sinusoidal embedding of t
  (Vaswani et al. 2017; Tancik et al. 2020 for Fourier features) concatenated with x,
  then a shallower, narrower MLP.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from fmlib import resources
from fmlib.checks import check_int

TIME_EMBEDDINGS = ("raw", "sinusoidal")


def sinusoidal_embedding(t: Tensor, frequencies: Tensor) -> Tensor:
    """gamma(t) = [cos(w_k t), sin(w_k t)]_k, shape [N, 2K] for t: [N], w: [K].

    Fourier features of time (Vaswani et al. 2017; Tancik et al. 2020): the network can
    change quickly with t (the field sharpens near t = 1) without large weights.
    """
    angles = t[:, None] * frequencies[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class MLP(nn.Module):
    """u_theta(x, t) = W_L sigma(... sigma(W_1 [x, phi(x), gamma(t)] + b_1) ...) + b_L, SiLU.

    Arguments:
        dim: data dimension d (input and output width), >= 1.
        hidden: width of every hidden layer, >= 1.
        layers: number of hidden layers (Linear + SiLU), >= 1; the Guide uses 4.
        time_embedding: "raw" (gamma(t) = t, the Guide) or "sinusoidal"
            (gamma(t) = [cos(w_k t), sin(w_k t)], k = 1..time_features / 2).
        time_features: size of gamma(t) for "sinusoidal" (even, >= 2).
        max_frequency: w_k spaced geometrically from 1 to max_frequency (>= 1), in
            radians per unit of t.
        x_features: size of the Fourier features of x, phi(x) = [cos(B x), sin(B x)]
            (even, >= 0; 0 = none), B: [x_features / 2, dim] ~ x_scale N(0, I), drawn
            once from a fixed seed (Tancik et al. 2020) and saved as a buffer.
        x_scale: standard deviation of B (> 0), in radians per unit of x.
        condition_features: width of an extra input c (>= 0) a subclass concatenates after
            gamma(t), e.g. a label embedding (fmlib.guidance.ConditionalMLP); forward() here
            takes none, so it must be 0 for a plain MLP.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 256,
        layers: int = 3,
        time_embedding: str = "sinusoidal",
        time_features: int = 32,
        max_frequency: float = 100.0,
        x_features: int = 0,
        x_scale: float = 1.0,
        condition_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("dim", dim, 1)
        check_int("hidden", hidden, 1)
        check_int("layers", layers, 1)
        if time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(
                f"time_embedding must be one of {', '.join(TIME_EMBEDDINGS)}, "
                f"got {time_embedding!r}"
            )
        check_int("time_features", time_features, 2)
        if time_features % 2:
            raise ValueError(f"time_features must be even, got {time_features}")
        if not isinstance(max_frequency, (int, float)) or not 1.0 <= max_frequency < math.inf:
            raise ValueError(f"max_frequency must be in [1, inf), got {max_frequency!r}")
        check_int("x_features", x_features, 0)
        check_int("condition_features", condition_features, 0)
        if x_features % 2:
            raise ValueError(f"x_features must be even, got {x_features}")
        if not isinstance(x_scale, (int, float)) or not 0 < x_scale < math.inf:
            raise ValueError(f"x_scale must be in (0, inf), got {x_scale!r}")
        self.config = {
            "dim": dim,
            "hidden": hidden,
            "layers": layers,
            "time_embedding": time_embedding,
            "time_features": time_features,
            "max_frequency": float(max_frequency),
            "x_features": x_features,
            "x_scale": float(x_scale),
        }
        if condition_features:  # plain MLPs keep the config (and checkpoints) of before
            self.config["condition_features"] = condition_features
        self.dim = dim
        self.time_embedding = time_embedding
        n_freq = time_features // 2
        frequencies = torch.logspace(0.0, math.log10(max_frequency), n_freq)
        self.register_buffer("frequencies", frequencies)
        fixed = torch.Generator().manual_seed(0)  # the same features for every model
        self.register_buffer(
            "x_frequencies", x_scale * torch.randn(x_features // 2, dim, generator=fixed)
        )
        t_width = 1 if time_embedding == "raw" else time_features
        widths = [dim + x_features + t_width + condition_features] + [hidden] * layers
        blocks: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            blocks += [nn.Linear(w_in, w_out), nn.SiLU()]
        blocks.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*blocks)

    def embed_time(self, t: Tensor) -> Tensor:
        """gamma(t): [N, 1] for "raw", [N, time_features] for "sinusoidal"."""
        if self.time_embedding == "raw":
            return t[:, None]
        return sinusoidal_embedding(t, self.frequencies)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """u_theta(x, t) for x: [N, dim] and t: [N], a 0-d tensor or a float -> [N, dim]."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [N, {self.dim}], got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != x.shape[:1]:
            raise ValueError(f"t must have shape [N] = [{x.shape[0]}], got {tuple(t.shape)}")
        angles = x @ self.x_frequencies.T
        features = [x, angles.cos(), angles.sin(), self.embed_time(t)]
        return self.net(torch.cat(features, dim=1))


def reference_mlp(dim: int = 2) -> MLP:
    """The Flow Matching Guide's 2D network: [x, t] -> 4 x (Linear(512), SiLU) -> Linear."""
    return MLP(dim=dim, hidden=512, layers=4, time_embedding="raw")


def save(model: MLP, path: str | Path) -> None:
    """Write {"config": model.config, "state_dict": model.state_dict()} to `path`."""
    if type(model) is not MLP:  # load() rebuilds an MLP, not a subclass
        raise ValueError(f"model must be an fmlib.models.MLP, got {type(model).__name__}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dict(model.config), "state_dict": state}, Path(path))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> MLP:
    """Rebuild the MLP saved by `save` (torch.load with weights_only=True), in eval mode."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
        raise ValueError(f"path must hold a dict with 'config' and 'state_dict', got {path}")
    model = MLP(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


# The trained checkerboard models shipped with fmlib (fmlib/resources), each made by
# benchmarks/train_checkerboard.py with the Recipe of fmlib.training, sigma_min replaced.
CHECKERBOARD_SIGMA_MINS = (0.0, 0.05, 0.1, 0.25)  # one checkpoint each, 6000 steps, seed 0
CHECKERBOARD_STEPS = 6000
CHECKERBOARD_SEEDS = (0, 1, 2)  # replicates over training seeds, a shorter budget:
CHECKERBOARD_SEED_STEPS = 1000  # 12 runs of 6000 steps did not fit the shared CPU


def checkerboard_checkpoint(sigma_min: float, seed: int | None = None) -> Path:
    """The shipped checkerboard model of `sigma_min`: with seed=None the 6000-step one,

        python benchmarks/train_checkerboard.py --steps 6000 --sigma-min S --threads 1 \\
            --save fmlib/resources/checkerboard_sigma_min_S.pt

    else the 1000-step replicate of training seed `seed` (--steps 1000 --seed SEED --no-eval,
    saved as checkerboard_sigma_min_S_1000steps_seedSEED.pt), so that comparisons between
    sigma_min values carry a standard error over training seeds."""
    if sigma_min not in CHECKERBOARD_SIGMA_MINS:
        raise ValueError(
            f"sigma_min must be one of the shipped {CHECKERBOARD_SIGMA_MINS}, got {sigma_min!r}"
        )
    if seed is None:
        return resources.path(f"checkerboard_sigma_min_{sigma_min:.2f}.pt")
    if seed not in CHECKERBOARD_SEEDS:
        raise ValueError(f"seed must be one of the shipped {CHECKERBOARD_SEEDS}, got {seed!r}")
    return resources.path(
        f"checkerboard_sigma_min_{sigma_min:.2f}_{CHECKERBOARD_SEED_STEPS}steps_seed{seed}.pt"
    )


def load_checkerboard_models() -> dict[float, MLP]:
    """sigma_min -> the shipped 6000-step checkerboard model (CPU, eval mode)."""
    return {s: load(checkerboard_checkpoint(s)) for s in CHECKERBOARD_SIGMA_MINS}


def load_checkerboard_seed_models() -> dict[float, list[MLP]]:
    """sigma_min -> [the 1000-step model of each training seed in CHECKERBOARD_SEEDS]."""
    return {
        s: [load(checkerboard_checkpoint(s, seed)) for seed in CHECKERBOARD_SEEDS]
        for s in CHECKERBOARD_SIGMA_MINS
    }


# notebook 14's digit flows (64 dimensions), made by benchmarks/train_digits.py models
DIGITS_SEEDS = (0, 1, 2)


def float32_state(state: dict) -> dict:
    """A state dict with its floating tensors as float32 (the digits files hold float16)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_digits_checkpoint(kind: str, seed: int, model_class: type[nn.Module]):
    """(model_class(**config) with the EMA weights of fmlib/resources/digits_<kind>_seed<seed>.pt
    as float32, in eval mode; the file's other entries)."""
    if seed not in DIGITS_SEEDS:
        raise ValueError(f"seed must be one of the shipped {DIGITS_SEEDS}, got {seed!r}")
    saved = torch.load(resources.path(f"digits_{kind}_seed{seed}.pt"), weights_only=True)
    model = model_class(**saved["config"])
    model.load_state_dict(float32_state(saved.pop("state_dict")))
    return model.eval(), saved


def load_digits(seed: int) -> tuple[MLP, dict]:
    """The unconditional digits flow of training seed `seed`: fmlib/resources/
    digits_unconditional_seed<seed>.pt, from benchmarks/train_digits.py. Returns (the MLP's
    EMA weights, float16 stored, as float32 in eval mode, {"seed", "config", "train",
    "steps", "sigma_min", "losses" (every "loss_every"-th step), "loss_every"})."""
    return load_digits_checkpoint("unconditional", seed, MLP)
