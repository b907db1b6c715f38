"""The extra training seeds shipped for notebooks 08 and 09 (benchmarks/train_seed_replicates)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from fmlib import couplings, guidance

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_seed_replicates.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_seed_replicates", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [1, 2])
def test_coupling_replicates_follow_the_script_recipe(seed):
    script = _script()
    saved = couplings.load_seed_replicate(seed)
    assert saved["config"] == script.COUPLING_MODEL and saved["steps"] == script.COUPLING_STEPS
    names = {"independent", "OT b=4", "OT b=8", "OT b=64", "reflow"}
    assert set(saved["models"]) == names | {"moons independent", "moons OT b=64"}
    x, t = torch.randn(5, 2), torch.rand(5)
    for model in saved["models"].values():
        assert not model.training and torch.isfinite(model(x, t)).all()
    # the OT-coupled losses sit below the independent coupling's (a model is not a copy)
    loss = saved["final_loss"]
    assert loss["OT b=64"] < loss["OT b=8"] < loss["OT b=4"] < loss["independent"]


@pytest.mark.parametrize("seed", [1, 2])
def test_guidance_replicates_follow_the_script_recipe(seed):
    script = _script()
    model, info = guidance.load_seed_replicate(seed)
    assert info["seed"] == seed and info["steps"] == script.GUIDANCE_STEPS
    assert info["p_drop"] == script.GUIDANCE_P_DROP and model.n_classes == 3
    assert info["loss_last_200"] < info["loss_first_200"]
    x, t = torch.randn(4, 2), torch.rand(4)
    assert torch.isfinite(model(x, t, torch.tensor([0, 1, 2, 3]))).all()


def test_seeds_differ():
    a, b = (couplings.load_seed_replicate(s)["models"]["independent"] for s in (1, 2))
    x, t = torch.randn(5, 2), torch.rand(5)
    assert (a(x, t) - b(x, t)).abs().max() > 1e-3
