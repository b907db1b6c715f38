"""fmlib.figures.marginalization: memorisation numbers and the notebook-04 draw function."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fmlib.figures import marginalization as F  # noqa: E402


def test_nearest_distance_by_hand():
    pts = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 1.0], [3.0, 3.0], [6.0, 8.0]], dtype=torch.float64)
    assert torch.allclose(
        F.nearest_distance(x, pts), torch.tensor([1.0, 1.0, 5.0], dtype=torch.float64)
    )


def test_memorisation_follows_sigma_min():
    """p_1 = (1/K) sum_k N(x_k, sigma_min^2 I): mean nearest distance ~ sqrt(pi/2) sigma_min."""
    d_big = F.memorisation_distance(0.2, steps=20, n_points=5)
    d_zero = F.memorisation_distance(0.0, steps=20, n_points=5)
    assert d_big == pytest.approx(1.2533 * 0.2, rel=0.2)
    assert d_zero < 1e-3


def test_draw_returns_a_figure():
    fig = F.draw_marginalization(sigma_min=0.1, t=0.7, steps=5, n_points=5)
    assert isinstance(fig, Figure)
    assert len([a for a in fig.axes if a.get_title()]) == 3
    plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"sigma_min": -0.1}, "sigma_min"), ({"steps": 0}, "steps"), ({"n_points": 0}, "n_points")],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.draw_marginalization(**kwargs)
