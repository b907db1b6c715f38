"""fmlib.models: shapes, the Guide's reference network, the time embedding, save/load."""

import math

import pytest
import torch

from fmlib import models
from fmlib.models import MLP, load, reference_mlp, save, sinusoidal_embedding


def test_output_shape_and_scalar_time_broadcast():
    torch.manual_seed(0)
    model = MLP(hidden=16, layers=2)
    x = torch.randn(7, 2)
    out = model(x, torch.full((7,), 0.3))
    assert out.shape == (7, 2)
    torch.testing.assert_close(model(x, 0.3), out)
    torch.testing.assert_close(model(x, torch.tensor(0.3)), out)


def test_reference_mlp_is_the_guide_network():
    """[x, t] -> 4 x (Linear(512), SiLU) -> Linear(2): parameter count in closed form."""
    model = reference_mlp()
    expected = (3 * 512 + 512) + 3 * (512 * 512 + 512) + (512 * 2 + 2)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.config["time_embedding"] == "raw"
    assert sum(isinstance(m, torch.nn.SiLU) for m in model.modules()) == 4


def test_sinusoidal_embedding_closed_form():
    w = torch.tensor([1.0, 10.0])
    t = torch.tensor([0.0, 0.25])
    emb = sinusoidal_embedding(t, w)
    expected = torch.tensor(
        [[1.0, 1.0, 0.0, 0.0], [math.cos(0.25), math.cos(2.5), math.sin(0.25), math.sin(2.5)]]
    )
    torch.testing.assert_close(emb, expected)


def test_fourier_features_of_x_feed_the_first_layer():
    """[x, cos(B x), sin(B x), gamma(t)]: the first layer sees dim + x_features + time_features."""
    model = MLP(hidden=8, layers=1, time_features=4, x_features=6, x_scale=2.0)
    assert model.net[0].in_features == 2 + 6 + 4
    assert model.x_frequencies.shape == (3, 2)
    torch.testing.assert_close(model.x_frequencies, MLP(x_features=6, x_scale=2.0).x_frequencies)


def test_frequencies_are_geometric_from_1_to_max():
    model = MLP(hidden=8, layers=1, time_features=6, max_frequency=100.0)
    torch.testing.assert_close(model.frequencies, torch.tensor([1.0, 10.0, 100.0]))


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = MLP(hidden=24, layers=3, time_features=8, max_frequency=50.0, x_features=6)
    path = tmp_path / "model.pt"
    save(model, path)
    payload = torch.load(path, weights_only=True)
    assert payload["config"] == model.config
    loaded = load(path)
    x, t = torch.randn(11, 2), torch.rand(11)
    assert torch.equal(loaded(x, t), model(x, t))
    assert not loaded.training


def test_save_load_reference_mlp(tmp_path):
    model = reference_mlp()
    save(model, tmp_path / "ref.pt")
    x, t = torch.randn(5, 2), torch.rand(5)
    assert torch.equal(load(tmp_path / "ref.pt")(x, t), model(x, t))


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"dim": 0}, "dim"),
        ({"hidden": 0}, "hidden"),
        ({"layers": 0}, "layers"),
        ({"layers": 2.5}, "layers"),
        ({"time_embedding": "learned"}, "time_embedding"),
        ({"time_features": 5}, "time_features"),
        ({"max_frequency": 0.5}, "max_frequency"),
        ({"x_features": 3}, "x_features"),
        ({"x_features": -2}, "x_features"),
        ({"x_scale": 0.0}, "x_scale"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        MLP(**kwargs)


def test_bad_inputs_raise():
    model = MLP(hidden=8, layers=1)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(3, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="t must have shape"):
        model(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="model"):
        save(torch.nn.Linear(2, 2), "unused.pt")


def test_shipped_checkpoints_are_small_and_load() -> None:
    sizes = [
        models.checkerboard_checkpoint(s).stat().st_size for s in models.CHECKERBOARD_SIGMA_MINS
    ]
    assert max(sizes) < 300_000 and sum(sizes) < 1_200_000  # keep the repository lean
    for model in models.load_checkerboard_models().values():
        assert model(torch.zeros(3, 2), torch.full((3,), 0.5)).shape == (3, 2)
    with pytest.raises(ValueError, match="sigma_min must be one of the shipped"):
        models.checkerboard_checkpoint(0.3)


def test_seed_checkpoints_are_small_and_load() -> None:
    paths = [
        models.checkerboard_checkpoint(s, seed)
        for s in models.CHECKERBOARD_SIGMA_MINS
        for seed in models.CHECKERBOARD_SEEDS
    ]
    assert (
        len(set(paths))
        == len(models.CHECKERBOARD_SIGMA_MINS) * len(models.CHECKERBOARD_SEEDS)
        >= 12
    )  # >= 3 seeds each
    assert sum(p.stat().st_size for p in paths) < 2_500_000  # assets stay lean
    seed_models = models.load_checkerboard_seed_models()
    assert list(seed_models) == list(models.CHECKERBOARD_SIGMA_MINS)
    x, t = torch.randn(5, 2), torch.full((5,), 0.5)
    for replicates in seed_models.values():  # the seeds are different trainings
        outputs = [m(x, t) for m in replicates]
        assert len(outputs) == len(models.CHECKERBOARD_SEEDS) and not torch.equal(
            outputs[0], outputs[1]
        )
    with pytest.raises(ValueError, match="seed must be one of the shipped"):
        models.checkerboard_checkpoint(0.0, 7)
