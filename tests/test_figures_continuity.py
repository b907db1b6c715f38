"""fmlib.figures.continuity: the numbers behind the notebook-03 panel, and the draw function."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fmlib.figures import continuity as F  # noqa: E402


def test_mixture_marginal_at_t0_is_standard_normal():
    """p_0 of the OT marginal path is N(0, I) whatever the target: compare with the formula."""
    log_p, _ = F.pair(0.0)
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    expected = -0.5 * (x**2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(log_p(x, torch.zeros(2, dtype=torch.float64)), expected, atol=1e-12)


def test_true_field_converges_and_wrong_fields_stall():
    true = F.convergence(0.0, 0.5, "true")
    assert true.order == pytest.approx(2.0, abs=0.35)
    for field in F.FIELDS[1:]:
        wrong = F.convergence(0.0, 0.5, field)
        assert abs(wrong.order) < 0.6
        assert wrong.norm[-1] > 10 * true.norm[-1]


def test_particle_error_shrinks_with_steps():
    assert F.particle_error(0.0, 0.8, 1) > 3 * F.particle_error(0.0, 0.8, 8)


def test_draw_returns_a_figure_with_three_panels():
    fig = F.draw_continuity(sigma_min=0.1, t=0.5, steps=4, n=17, field="scaled ×1.5")
    assert isinstance(fig, Figure)
    assert len([a for a in fig.axes if a.get_title()]) == 3
    plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma_min": 1.5}, "sigma_min"),
        ({"t": 2.0}, "t must"),
        ({"field": "x"}, "field"),
        ({"n": 20}, "n must"),
    ],  # fmt: skip
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.draw_continuity(**kwargs)


def test_bench_entries_are_callable():
    for name, fn, kwargs in F.BENCH:
        assert callable(fn) and isinstance(name, str) and isinstance(kwargs, dict)
