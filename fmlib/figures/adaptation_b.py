"""Notebook 11, section 2: reward fine-tuning, drawn.

`reward_densities_figure`: the base density, the exact tilted density
p* = p_base e^{r / lambda} / Z, and samples of the fine-tuned and the online (two-round) models
over the tilted density's contours.
`reward_tv_figure`: the total variation to p* against the number of fine-tuning steps, with the
floor of exact samples at the same sample size.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots
from fmlib import reward_tuning as rt
from fmlib.marginal import GaussianMixture

REWARD_VIEW = 4.0  # the figures show [-4, 4]^2, the TV grid
REWARD_HEAT = 120


def _log_density_image(q: GaussianMixture) -> Tensor:
    _, _, points = plots.grid2d(REWARD_VIEW, REWARD_HEAT)
    return q.log_prob(points.double()).reshape(REWARD_HEAT, REWARD_HEAT)


def reward_densities_figure(
    base: GaussianMixture,
    tilted: GaussianMixture,
    samples: dict[str, Tensor],
    lam: float,
    centre=rt.REWARD_CENTRE,
) -> Figure:
    """Base density | tilted density (one colour scale) | each sample set of `samples`
    (name -> [N, 2], the first 2000 points) over the tilted density's contours (2%, 20% and
    60% of the densities' maximum)."""
    fig, axes = plots.new_axes(2 + len(samples), size=4.0, ncols=2)
    ext = (-REWARD_VIEW, REWARD_VIEW, -REWARD_VIEW, REWARD_VIEW)
    p_base, p_tilt = _log_density_image(base).exp(), _log_density_image(tilted).exp()
    top = float(max(p_base.max(), p_tilt.max()))
    for ax, image, title in ((axes[0], p_base, "base density $p_{base}$"), (axes[1], p_tilt, None)):
        plots.heatmap(
            ax,
            image,
            ext,
            title=title or f"tilted density $p^*$, λ = {lam:g}",
            label="density",
            vmin=0,
            vmax=top,
        )
        ax.set(xlabel="$x^{(1)}$", ylabel="$x^{(2)}$")
    xx, yy, _ = plots.grid2d(REWARD_VIEW, REWARD_HEAT)
    levels = [top * f for f in (0.02, 0.2, 0.6)]
    for ax, (name, x) in zip(axes[2:], samples.items(), strict=True):
        plots.scatter2d(ax, x[:2000], title=name, lim=REWARD_VIEW, s=4, alpha=0.5)
        ax.contour(xx, yy, p_tilt, levels=levels, colors="k", linewidths=0.6, alpha=0.7)
    for ax in axes:
        ax.plot(*centre, "*", color="white", mec="k", ms=12, label="reward centre c")
    axes[-1].legend(loc="lower left", fontsize=9)
    return fig


def reward_tv_figure(
    steps: list[int], tv: list[float], tv_se: list[float], floor: float, floor_se: float, n: int
) -> Figure:
    """TV to p* (+- 2 SE) against fine-tuning steps (0 = the base model), and the floor band:
    exact samples of p* at the same chunk size n."""
    fig, (ax,) = plots.new_axes(1, size=5.5)
    x = [max(s, 5) for s in steps]  # step 0 drawn at 5 on the log axis
    ax.errorbar(
        x, tv, yerr=[2 * s for s in tv_se], marker="o", capsize=3, label="fine-tuned model (± 2 SE)"
    )
    ax.axhspan(floor - 2 * floor_se, floor + 2 * floor_se, color="0.8", label="floor ± 2 SE")
    ax.axhline(floor, color="0.4", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(x, ["0 (base)" if s == 0 else str(s) for s in steps])
    ax.minorticks_off()  # the axis is not continuous below 25
    ax.set(
        xlabel="reward-weighted CFM steps",
        ylabel=f"TV to $p^*$ (n = {n} per chunk)",
        ylim=(0, max(tv) * 1.1),
        title="distance to the tilted density (separate runs)",
    )
    ax.legend(fontsize=10)
    return fig
