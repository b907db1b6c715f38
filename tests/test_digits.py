"""Notebook 14's digits: data (split, dequantisation), metrics (Fréchet distance, nearest
neighbours, bits per dimension, principal components), the shipped checkpoints and the
script that made them (benchmarks/train_digits.py), and the panel's view."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fmlib import data, guidance, metrics, models, resources
from fmlib.figures import digits as figs
from fmlib.paths import OTPath

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_digits.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_is_stratified_and_disjoint_in_size():
    split = data.digits_split()
    assert split["train"].shape == (1437, 64) and split["held_out"].shape == (360, 64)
    assert split["train"].dtype == torch.int64 and int(split["train"].max()) == 16
    counts = torch.bincount(split["held_out_labels"], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20 % of each class
    with pytest.raises(ValueError, match="held_out"):
        data.digits_split(held_out=1.0)


def test_dequantize_stays_in_the_bin_of_its_pixel():
    pixels = torch.arange(17).repeat(4, 1)[:, :16].reshape(4, 16).repeat(1, 4)  # [4, 64]
    x = data.dequantize(pixels, torch.Generator().manual_seed(0))
    bins = torch.floor((x + 1) / data.DIGITS_BIN).long()  # the inverse of the scaling
    assert torch.equal(bins, pixels)
    assert torch.allclose(data.pixel_centres(pixels), (2 * pixels.float() + 1) / 17 - 1)
    assert math.isclose(data.DIGITS_BIN * data.DIGITS_LEVELS, 2.0)


def test_frechet_distance_of_1d_samples_is_the_gaussian_w2_closed_form():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 1, generator=g), 3 + 2 * torch.randn(400, 1, generator=g)
    closed = (x.mean() - y.mean()) ** 2 + (x.std() - y.std()) ** 2  # W2^2 of two 1D Gaussians
    assert math.isclose(metrics.frechet_distance(x, y), float(closed), rel_tol=1e-5)


def test_frechet_distance_is_symmetric_rotation_invariant_and_zero_on_itself():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 4, generator=g) @ torch.randn(4, 4, generator=g)
    y = torch.randn(200, 4, generator=g) @ torch.randn(4, 4, generator=g)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g))
    fd = metrics.frechet_distance(x, y)
    assert math.isclose(fd, metrics.frechet_distance(y, x), rel_tol=1e-6)
    assert math.isclose(fd, metrics.frechet_distance(x @ q, y @ q), rel_tol=1e-6)
    assert abs(metrics.frechet_distance(x, x)) < 1e-9
    with pytest.raises(ValueError, match="columns"):
        metrics.frechet_distance(x, y[:, :3])


def test_nearest_neighbour_distance_by_brute_force():
    g = torch.Generator().manual_seed(2)
    x, ref = torch.randn(7, 3, generator=g), torch.randn(11, 3, generator=g)
    brute = torch.tensor([min((a - b).norm().item() for b in ref) for a in x.double()])
    assert torch.allclose(metrics.nearest_neighbour_distance(x, ref), brute.double())
    assert metrics.nearest_neighbour_distance(ref[:4], ref).abs().max() == 0  # copies: 0


def test_bits_per_dim_of_the_uniform_density_is_log2_of_the_levels():
    d, width = 64, data.DIGITS_BIN
    log_p = torch.full((3,), -d * math.log(data.DIGITS_LEVELS * width))  # uniform on [-1, 1)^d
    bits = metrics.bits_per_dim(log_p, d, width)
    assert torch.allclose(bits, torch.full((3,), math.log2(17), dtype=torch.float64))
    with pytest.raises(ValueError, match="bin_width"):
        metrics.bits_per_dim(log_p, d, 0.0)


def test_principal_components_find_the_axes_of_an_elongated_cloud():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2000, 3, generator=g) * torch.tensor([5.0, 0.1, 1.0]) + 7.0
    f = metrics.principal_components(x, 2)
    z = f(x)
    assert z.shape == (2000, 2) and abs(z.mean(0)).max() < 1e-9
    assert z[:, 0].std() > 4.5 and 0.8 < z[:, 1].std() < 1.2  # axes 0, then 2 (not 1)


def test_train_conditional_takes_a_labelled_sampler():
    q = guidance.labelled_mixture(dtype=torch.float32)
    runs = []
    for sampler in (q, lambda n, g: guidance.sample_labelled(q, n, g)):
        torch.manual_seed(0)
        model = guidance.ConditionalMLP(n_classes=3, hidden=16)
        _, losses = guidance.train_conditional(
            model, sampler, OTPath(), steps=5, batch_size=32,
            generator=torch.Generator().manual_seed(0), progress=False,
        )  # fmt: skip
        runs.append(losses)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("seed", models.DIGITS_SEEDS)
def test_shipped_models_follow_the_script_recipe(seed):
    script = _script()
    flow, saved = models.load_digits(seed)
    assert saved["config"] == script.MODEL and saved["train"] == script.TRAIN
    assert saved["steps"] == script.STEPS and saved["sigma_min"] == script.SIGMA_MIN
    net, saved_c = guidance.load_digits(seed)
    assert saved_c["config"] == script.CONDITIONAL_MODEL and saved_c["p_drop"] == script.P_DROP
    assert saved_c["train"] == script.TRAIN and saved_c["steps"] == script.STEPS
    x, t = torch.randn(4, 64), torch.rand(4)
    assert torch.isfinite(flow(x, t)).all() and torch.isfinite(net(x, t, torch.arange(4))).all()
    losses = saved["losses"]  # training lowered the loss
    assert sum(losses[-20:]) / 20 < 0.7 * sum(losses[:5]) / 5
    with pytest.raises(ValueError, match="seed"):
        models.load_digits(7)


def test_shipped_files_are_small():
    sizes = [resources.path(n).stat().st_size for n in resources.names() if "digits" in n]
    assert len(sizes) >= 7 and sum(sizes) < 4e6


def test_montage_places_digits_with_gaps():
    x = torch.arange(3 * 64, dtype=torch.float32).reshape(3, 64)
    image = figs.montage(x, cols=2)
    assert image.shape == (17, 17)
    assert np.array_equal(image[:8, 9:17], x[1].reshape(8, 8).numpy())
    assert np.isnan(image[8]).all() and np.isnan(image[9:, 9:]).all()  # gap, missing digit


def test_pixel_colorbar_is_as_tall_as_the_wide_image():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    image = figs.show_digits(ax, torch.zeros(40, 64), cols=10)
    bar = figs.pixel_colorbar(fig, ax, image)
    fig.canvas.draw()
    drawn, beside = ax.get_position(), bar.ax.get_position()
    plt.close(fig)
    assert drawn.height < 0.9  # the image is wide: it does not fill the figure's height
    assert math.isclose(beside.height, drawn.height, rel_tol=1e-6)
    assert math.isclose(beside.y0, drawn.y0, rel_tol=1e-6)


def test_panel_at_w0_ignores_the_label_and_starts_from_noise():
    w0 = figs.W_OPTIONS.index(0.0)
    a, b = figs.trajectories(0, 4)[:, w0], figs.trajectories(5, 4)[:, w0]
    assert torch.allclose(a, b)  # w = 0: the unconditional field, whatever the class
    w2 = figs.W_OPTIONS.index(2.0)
    assert not torch.allclose(figs.trajectories(0, 4)[-1, w2], figs.trajectories(5, 4)[-1, w2])
    assert torch.equal(a[0], figs._x0())
    with pytest.raises(ValueError, match="sigma_min"):
        figs.Digits().update(w=2.0, y="3", sigma_min=1.5, steps=16, t=1.0)
    view = figs.Digits()  # sigma_min has no effect: the same picture at 0 and 0.3
    assert view.draw(w=2.0, y="3", sigma_min=0.0, steps=4, t=0.5) is view.fig
    before = view.png()
    view.draw(w=2.0, y="3", sigma_min=0.3, steps=4, t=0.5)
    assert view.png() == before
