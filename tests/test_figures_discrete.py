"""fmlib.figures.discrete: the sweep's numbers, the view's readouts and controls."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from fmlib import discrete  # noqa: E402
from fmlib.figures import discrete as F  # noqa: E402


def test_target_is_the_discretised_checkerboard():
    q = F.target()
    assert q.shape == (F.N_VALUES, F.N_VALUES)
    assert int((q > 0).sum()) == F.N_VALUES**2 // 2


@pytest.mark.parametrize("source", discrete.SOURCES)
@pytest.mark.parametrize("power", F.POWERS)
def test_sweep_improves_with_steps(source, power):
    runs = F.sweep(source, power)
    tvs = [runs[n][1] for n in F.STEPS]
    assert all(a >= b for a, b in zip(tvs, tvs[1:], strict=False))
    for n in F.STEPS:
        p = runs[n][0]
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-12) and float(p.min()) >= 0


def test_one_step_with_a_slow_start_leaves_everything_masked():
    assert F.sweep("mask", 2.0)[1][1] == pytest.approx(1.0)
    assert F.sweep("mask", 1.0)[1][1] == pytest.approx(0.5)


def test_distances_count_the_masked_mass():
    path = discrete.MixturePath(F.N_VALUES, "mask", 1.0)
    all_masked = torch.zeros(path.vocab, path.vocab, dtype=torch.float64)
    all_masked[-1, -1] = 1.0
    tv, kl = F.distances(path, all_masked)
    assert tv == pytest.approx(1.0) and kl == float("inf")


def test_view_titles_report_the_values():
    view = F.DiscretePath()
    view.update(steps=16, power=3.0, source="uniform", t=0.35)
    texts = " | ".join(t.get_text() for t in view.fig.findobj(Text))
    for piece in ("steps = 16", "p = 3", "source = uniform", "t = 0.35"):
        assert piece in texts
    tv = F.sweep("uniform", 3.0)[16][1]
    assert f"TV = {tv:.3f}" in texts


def test_controls_offer_only_drawable_values():
    view = F.DiscretePath()
    controls = view.controls()
    assert set(controls) == {"steps", "power", "source", "t"}
    assert [v for _, v in controls["steps"].options] == list(F.STEPS)
    assert [v for _, v in controls["power"].options] == list(F.POWERS)
    assert list(controls["source"].options) == list(discrete.SOURCES)
    assert "σ_min" in view.NOTE


def test_bad_values_raise():
    with pytest.raises(ValueError, match="steps"):
        F.DiscretePath.draw(steps=3)
    with pytest.raises(ValueError, match="power"):
        F.DiscretePath.draw(power=1.5)
    with pytest.raises(ValueError, match="source"):
        F.DiscretePath.draw(source="gaussian")


def test_static_draw_is_a_pyplot_figure():
    fig = F.DiscretePath.draw(steps=4, power=1.0, source="mask", t=0.5)
    assert fig.number in plt.get_fignums()
    plt.close(fig)


def test_mask_source_with_an_infinite_first_rate_stays_at_one_step():
    """p = 0.5: the clamped first step sets every token, and set tokens never change."""
    runs = F.sweep("mask", 0.5)
    assert all(runs[n][1] == pytest.approx(0.5, abs=1e-12) for n in F.STEPS)
    assert F.sweep("mask", 1.0)[8][1] == pytest.approx(0.5 / 8, abs=1e-12)


def test_view_draws_both_sources_and_is_readable():
    from fmlib import figure_check

    view = F.DiscretePath()
    view.update(steps=4, power=1.0, source="uniform", t=0.5)
    for source, line in view.tv_lines.items():
        expected = [F.sweep(source, 1.0)[n][1] for n in F.STEPS]
        assert list(line.get_ydata()) == pytest.approx(expected)
    assert list(view.marker.get_ydata()) == pytest.approx([F.sweep("uniform", 1.0)[4][1]])
    for values in ({"steps": 1, "power": 0.5, "source": "mask", "t": 0.0}, {"steps": 32}):
        view.update(**values)
        assert figure_check.text_problems(view.fig) == []
