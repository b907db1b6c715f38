"""fmlib.precision: TF32 flags restored whichever API set them; bf16 only in the layers.

The TF32 scenarios are the ways a caller can have set the flags before sampling: the
legacy API (set_float32_matmul_precision, allow_tf32), the new per-backend
`fp32_precision` flags (torch >= 2.9), and mixes. The observed state is read through
PyTorch's public getters only (a getter that raises is recorded as raising), plus how the
per-backend flags follow a change of the generic one (a flag at "none" inherits).
"""

from __future__ import annotations

import pytest
import torch

from fmlib import models, resources
from fmlib.precision import _NEW_API, _restore, bf16_linears, matmul_precision, precision_flags
from fmlib.repro import one_thread
from fmlib.sampling import FastSampler

CHECKPOINT = resources.path("checkerboard_model.pt")
needs_new_api = pytest.mark.skipif(not _NEW_API, reason="torch < 2.9 has only the legacy API")
START = precision_flags()  # the process's state before any test changed it

SCENARIOS = {
    "untouched": [],
    "legacy high": [lambda: torch.set_float32_matmul_precision("high")],
    "legacy medium": [lambda: torch.set_float32_matmul_precision("medium")],
    "legacy allow_tf32": [lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True)],
    "new cuda.matmul tf32 (issue 17)": [
        lambda: setattr(torch.backends.cuda.matmul, "fp32_precision", "tf32")
    ],
    "new generic tf32": [lambda: setattr(torch.backends, "fp32_precision", "tf32")],
    "new generic ieee, mkldnn.matmul bf16": [
        lambda: setattr(torch.backends, "fp32_precision", "ieee"),
        lambda: setattr(torch.backends.mkldnn.matmul, "fp32_precision", "bf16"),
    ],
    "legacy high, then new cuda.matmul ieee": [
        lambda: torch.set_float32_matmul_precision("high"),
        lambda: setattr(torch.backends.cuda.matmul, "fp32_precision", "ieee"),
    ],
}
GETTERS = {
    "get_float32_matmul_precision()": torch.get_float32_matmul_precision,
    "cuda.matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
    "cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
}
if _NEW_API:
    GETTERS |= {
        "fp32_precision": lambda: torch.backends.fp32_precision,
        "cuda.matmul": lambda: torch.backends.cuda.matmul.fp32_precision,
        "cudnn": lambda: torch.backends.cudnn.fp32_precision,
        "cudnn.conv": lambda: torch.backends.cudnn.conv.fp32_precision,
        "cudnn.rnn": lambda: torch.backends.cudnn.rnn.fp32_precision,
        "mkldnn": lambda: torch.backends.mkldnn.fp32_precision,
        "mkldnn.matmul": lambda: torch.backends.mkldnn.matmul.fp32_precision,
        "mkldnn.conv": lambda: torch.backends.mkldnn.conv.fp32_precision,
        "mkldnn.rnn": lambda: torch.backends.mkldnn.rnn.fp32_precision,
    }


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread (a busy 2-core machine makes a parallel region wait)."""
    with one_thread():
        yield


def _read(getter) -> object:
    try:
        return getter()
    except RuntimeError as error:
        return f"raises {str(error)[:40]}"


def observed() -> dict[str, object]:
    """Every public getter, and again with the generic flag at "ieee" then "tf32" (shows
    which flags inherit), the generic flag then put back."""
    state = {name: _read(getter) for name, getter in GETTERS.items()}
    if _NEW_API:
        generic = torch.backends.fp32_precision  # the root flag: its getter is its value
        for probe in ("ieee", "tf32"):
            torch.backends.fp32_precision = probe
            state |= {f"{name} | {probe}": _read(g) for name, g in GETTERS.items()}
        torch.backends.fp32_precision = generic
    return state


@pytest.fixture(autouse=True)
def fresh_flags():
    _restore(START)
    yield
    _restore(START)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matmul_precision_restores_every_flag(scenario: str, precision: str) -> None:
    if "new" in scenario and not _NEW_API:
        pytest.skip("torch < 2.9 has no per-backend fp32_precision flags")
    for set_flag in SCENARIOS[scenario]:
        set_flag()
    before = observed()
    tf32 = precision == "tf32"
    with matmul_precision(precision):
        # inside, the legacy and the new getters agree and none raises (the inductor
        # calls both while compiling)
        assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest")
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        if _NEW_API:
            assert torch.backends.cuda.matmul.fp32_precision == ("tf32" if tf32 else "ieee")
    assert observed() == before


@needs_new_api
def test_issue_17_reproduction_and_a_raising_block() -> None:
    """The issue's lines: the new API, then an fp32 block (raised RuntimeError before)."""
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    before = observed()
    with pytest.raises(KeyError), matmul_precision("fp32"):
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        raise KeyError("an error inside the block")
    assert observed() == before
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"


@needs_new_api
def test_sampler_restores_the_new_api_flags() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    before = observed()
    torch.manual_seed(0)
    x1 = FastSampler(models.MLP(hidden=8, layers=1), steps=2, precision="tf32")(torch.zeros(4, 2))
    assert x1.shape == (4, 2) and observed() == before


# -- bf16 -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint() -> models.MLP:
    return models.load(CHECKPOINT)


def _first_layer_input(model: torch.nn.Module, network, x, t) -> torch.Tensor:
    """The input features as the first Linear receives them: [x, phi(x), gamma(t)]."""
    seen = []
    handle = model.net[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.inference_mode():
        network(x, t)
    handle.remove()
    return seen[0]


def test_bf16_input_features_are_computed_in_fp32(checkpoint: models.MLP) -> None:
    x = 3 * torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    t = torch.rand(512, generator=torch.Generator().manual_seed(1))
    fp32 = _first_layer_input(checkpoint, checkpoint, x, t)
    ours = _first_layer_input(checkpoint, bf16_linears(checkpoint), x, t)
    assert ours.dtype == torch.float32 and torch.equal(ours, fp32)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast over the whole forward
        whole = _first_layer_input(checkpoint, checkpoint, x, t)
    gap = (whole.float() - fp32).abs().max().item()
    print(f"input features, bf16 autocast over the whole forward vs fp32: max gap {gap:.3f}")
    assert gap > 0.05  # cos/sin of bf16 angles B x: what the old sampler fed the network


def test_bf16_view_shares_the_parameters(checkpoint: models.MLP) -> None:
    view = bf16_linears(checkpoint)
    ours = dict(view.named_parameters(remove_duplicate=False))
    assert all(ours[f"net.{i}.linear.weight"] is checkpoint.net[i].weight for i in (0, 2, 4, 6))
    assert view.x_frequencies is checkpoint.x_frequencies
    assert type(checkpoint.net[0]) is torch.nn.Linear  # the caller's model is unchanged
    x, t = torch.randn(64, 2), torch.rand(64)
    with torch.inference_mode():
        out = view(x, t)
    assert out.dtype == torch.bfloat16


def test_bf16_sampling_is_close_to_fp32_on_the_checkpoint(checkpoint: models.MLP) -> None:
    x0 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(2))
    fp32 = FastSampler(checkpoint, steps=20, precision="fp32")(x0)
    bf16 = FastSampler(checkpoint, steps=20, precision="bf16")(x0)
    gaps = (bf16 - fp32).abs().amax(dim=1)
    median, worst = gaps.median().item(), gaps.max().item()
    print(f"checkpoint, midpoint 20 steps: |bf16 - fp32| median {median:.4f}, max {worst:.3f}")
    assert bf16.dtype == torch.float32
    # bf16 was used (not 0), and a typical sample moves ~ bf16's 2^-8 = 0.004 of a
    # unit-sized square; the worst are samples on a square's edge, where the flow splits
    assert 1e-4 < median < 0.02 and worst < 0.5
