"""Conditional flow matching training: the loss, the loop, and a recipe that converges on a CPU.

The CFM objective (Lipman et al. 2023, eq. (9); Lipman et al. 2024, eq. (4.8)):

    L_CFM(theta) = E_{t ~ U[0,1], x0 ~ N(0, I), x1 ~ q} || u_theta(x_t, t) - d/dt psi_t ||^2,
    x_t = psi_t(x0 | x1).

For the OT path (sigma_min = 0 in the recipe) psi_t = (1 - t) x0 + t x1 and the target is
x1 - x0. `train` runs Adam(W) on Monte-Carlo estimates of L_CFM for a wall-clock budget
(`seconds`) or a fixed number of steps (deterministic given the generator), with a
warmup + cosine learning rate and an exponential moving average (EMA) of the weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fmlib.checks import check_int, check_positive, check_range
from fmlib.losses import l_cfm
from fmlib.models import MLP
from fmlib.paths import OTPath

TIME_SAMPLINGS = ("uniform", "logit_normal")
SCHEDULES = ("cosine", "constant")

SampleX1 = Callable[[int, torch.Generator | None], Tensor]


def sample_time(n: int, generator: torch.Generator | None = None, kind: str = "uniform") -> Tensor:
    """t ~ U[0, 1] ("uniform"), or t = sigmoid(z), z ~ N(0, 1) ("logit_normal").

    Logit-normal: Esser et al. (2024); it puts more samples at mid t, fewer near 0 and 1.
    """
    if kind == "uniform":
        return torch.rand(n, generator=generator)
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    raise ValueError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {kind!r}")


def learning_rate(lr: float, progress: float, warmup: float) -> float:
    """lr(f) = lr min(1, f / warmup) (1 + cos(pi f)) / 2, f = fraction of the budget done.

    Linear warmup then cosine decay to 0 (Loshchilov & Hutter 2017). f is measured in
    steps or in seconds, so a wall-clock budget still ends with a small learning rate.
    """
    ramp = min(1.0, progress / warmup) if warmup > 0 else 1.0
    return lr * ramp * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay theta_ema + (1 - decay) theta (Polyak averaging)."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1 - decay)


@dataclass
class TrainResult:
    """What `train` returns: the trained model, its EMA copy and the history.

    losses[k] is the minibatch CFM loss at step k; lrs[k] its learning rate; `model` is
    the EMA model when ema_decay > 0 (use it for sampling), `raw_model` the last iterate.
    """

    model: nn.Module
    raw_model: nn.Module
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps, 1)


def _check_budget(seconds: float | None, steps: int | None) -> None:
    if seconds is None and steps is None:
        raise ValueError("seconds and steps must not both be None: give a budget")
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if steps is not None:
        check_int("steps", steps)


def _check_hyper(
    batch_size: int, lr: float, warmup: float, ema_decay: float, schedule: str = "cosine"
) -> None:
    check_int("batch_size", batch_size)
    check_positive("lr", lr)
    check_range("warmup", warmup, 0.0, 1.0, high_open=True)
    check_range("ema_decay", ema_decay, 0.0, 1.0, high_open=True)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def train(
    model: nn.Module,
    sample_x1: SampleX1,
    path,
    seconds: float | None = None,
    steps: int | None = None,
    batch_size: int = 2048,
    lr: float = 2e-2,
    weight_decay: float = 0.0,
    warmup: float = 0.02,
    ema_decay: float = 0.999,
    time_sampling: str = "uniform",
    generator: torch.Generator | None = None,
    progress: bool = True,
    schedule: str = "cosine",
) -> TrainResult:
    """Minimise L_CFM by AdamW: per step, x1 ~ q, x0 ~ N(0, I), t ~ p(t), one gradient step.

    theta <- AdamW(theta, grad (1/B) sum_i ||u_theta(x_t^i, t^i) - target^i||^2, lr(f)),
    lr(f) from `learning_rate` with f = max(step / steps, elapsed / seconds); stops at
    whichever budget ends first. `sample_x1(n, generator) -> [n, d]` draws the data.
    With `steps` only, the result is deterministic given `generator` and the initial weights.
    The defaults are `Recipe`'s (tuned for ~10^5-parameter MLPs; use lr ~1e-3 for the
    Guide's 4 x 512 network). schedule="constant" keeps lr fixed (no warm-up, no decay):
    the ablation baseline of benchmarks/ablation_checkerboard.py.
    """
    _check_budget(seconds, steps)
    _check_hyper(batch_size, lr, warmup, ema_decay, schedule)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True
    )
    ema = copy.deepcopy(model).requires_grad_(False)
    result = TrainResult(model=ema if ema_decay > 0 else model, raw_model=model)
    # One refresh a second: each refresh of the notebook bar is a burst of widget messages,
    # and thousands of them overflow the kernel's IOPub queue (nbval then loses the reply).
    bar = tqdm(total=steps, disable=not progress, desc="CFM training", unit="step", mininterval=1.0)
    start = time.perf_counter()
    done = 0.0
    while done < 1.0:
        rate = learning_rate(lr, done, warmup) if schedule == "cosine" else lr
        for group in optimizer.param_groups:
            group["lr"] = rate
        x1 = sample_x1(batch_size, generator)
        x0 = torch.randn(x1.shape, generator=generator)
        t = sample_time(batch_size, generator, time_sampling)
        loss = l_cfm(model, x0, x1, t, path)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema_decay > 0:
            ema_update(ema, model, min(ema_decay, (1 + result.steps) / (10 + result.steps)))
        result.steps += 1
        result.losses.append(loss.item())
        result.lrs.append(rate)
        elapsed = time.perf_counter() - start
        done = max(result.steps / steps if steps else 0.0, elapsed / seconds if seconds else 0.0)
        bar.update(1)
        if result.steps % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    result.seconds = time.perf_counter() - start
    if ema_decay == 0:
        result.model = model
    return result


@dataclass(frozen=True)
class Recipe:
    """The CPU recipe for 2D targets: defaults chosen by wall-clock on 2 shared CPU cores.

    Build the model with `recipe.model()`, the path with `recipe.path()`, and train with
    `recipe.fit(sample_x1, seconds=60, generator=g)` (= `train(..., **recipe.train_kwargs())`).
    Why each default (checkerboard, KL after a fixed budget, benchmarks/train_checkerboard.py):

    - hidden=128, layers=3: ~2.5x cheaper per step than 3 x 256 and ~10x cheaper than the
      Guide's 4 x 512; on a CPU more steps beat more width (3 x 256 at lr 1e-2, batch 1024:
      KL 0.099 in 60 s; at lr 2e-2 it diverges).
    - x_features=64, x_scale=2: Fourier features of x (Tancik et al. 2020) let a small MLP
      draw the squares' sharp edges; the largest single gain (KL 0.27 -> 0.165 with 32
      features, 0.159 with 64, at 3000 steps; x_scale=4 is worse: 0.23).
    - time_features=32, max_frequency=100: a sinusoidal embedding of t, so the field can
      sharpen quickly as t -> 1 (the raw t input of the Guide needs a bigger network).
    - sigma_min=0: the OT / rectified path ends exactly on the data.
    - batch_size=2048: with 60 s on 2 idle cores, 512 -> 18k steps, KL 0.135; 1024 ->
      13k steps, 0.109; 2048 -> 7.3k steps, 0.092 (less gradient noise near the edges).
      Re-checked with uniform t: 1024 x 10k steps 0.090 vs 2048 x 5.5k steps 0.076
      (and there x_scale=2.5: 0.081, lr=3e-2: 0.082).
    - lr=2e-2 (for 128 wide; 1e-2 for 256, 1e-3 for the Guide's 512), 2% warmup, cosine
      decay to 0 over the budget (in seconds or steps): large steps early, a small
      learning rate at the end (KL 0.38 at lr 1e-2 -> 0.33 at 2e-2, 1500 steps; 3e-3: 0.53).
    - time_sampling="uniform", the law of t in L_CFM itself. The squares' edges form near
      t = 1, which the logit-normal law (Esser et al. 2024, more samples at mid t) rarely
      draws: with this recipe and 5500 steps, KL 0.076 / 0.072 (uniform, seeds 0 / 1)
      against 0.102 / 0.095 (logit-normal). It helped only with the Guide's small lr
      (KL 0.53 -> 0.49 at lr 3e-3).
    - ema_decay=0.999: the cap of beta_k = min(0.999, (1 + k) / (10 + k)), reached only
      after 8990 steps; below that the average's iterates are on average K/10 steps old
      (600 at 6000 steps). With the cosine decay it changes the KL by < 0.005, kept
      because it never hurt and smooths samples.
    - weight_decay=0 (AdamW, float32).
    """

    hidden: int = 128
    layers: int = 3
    time_features: int = 32
    max_frequency: float = 100.0
    x_features: int = 64
    x_scale: float = 2.0
    sigma_min: float = 0.0
    batch_size: int = 2048
    lr: float = 2e-2
    weight_decay: float = 0.0
    warmup: float = 0.02
    ema_decay: float = 0.999
    time_sampling: str = "uniform"

    def model(self) -> MLP:
        return MLP(
            dim=2,
            hidden=self.hidden,
            layers=self.layers,
            time_embedding="sinusoidal",
            time_features=self.time_features,
            max_frequency=self.max_frequency,
            x_features=self.x_features,
            x_scale=self.x_scale,
        )

    def path(self) -> OTPath:
        return OTPath(self.sigma_min)

    def train_kwargs(self) -> dict:
        keys = ("batch_size", "lr", "weight_decay", "warmup", "ema_decay", "time_sampling")
        return {k: v for k, v in asdict(self).items() if k in keys}

    def fit(
        self,
        sample_x1: SampleX1,
        seconds: float | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> TrainResult:
        """A fresh `self.model()` trained by `train` with this recipe's hyper-parameters."""
        return train(
            self.model(),
            sample_x1,
            self.path(),
            seconds=seconds,
            steps=steps,
            generator=generator,
            progress=progress,
            **self.train_kwargs(),
        )


def train_steps(
    model: nn.Module,
    batch_loss: Callable[[], Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    lr: float,
    warmup: float = 0.02,
    ema_decay: float = 0.99,
    desc: str = "training",
    progress: bool = True,
) -> tuple[nn.Module, list[float]]:
    """A fixed number of gradient steps on `batch_loss()`; returns (EMA model in eval mode, losses).

    Per step k: lr = `learning_rate(lr, k / steps, warmup)` (warmup + cosine decay to 0),
    loss = batch_loss() (the callback draws its own batch, so the order of random draws is
    the caller's), one optimizer step, then the EMA theta_ema <- d theta_ema + (1 - d) theta
    with d = min(ema_decay, (1 + k) / (10 + k)) (a short average while the weights move fast).
    The loop shared by `fmlib.couplings.fit` and `fmlib.guidance.train_conditional`;
    deterministic given the callback's generator and the initial weights.
    """
    check_int("steps", steps)
    check_range("ema_decay", ema_decay, 0.0, 1.0, high_open=True)
    ema = copy.deepcopy(model).requires_grad_(False)
    losses = []
    for k in tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(lr, k / steps, warmup)
        loss = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(ema, model, min(ema_decay, (1 + k) / (10 + k)))
        losses.append(loss.item())
    return ema.eval(), losses
