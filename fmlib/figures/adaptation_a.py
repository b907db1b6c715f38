"""Notebook 11, section 1: few steps of a flow map against a teacher's Euler steps.

Two static figures: trajectories (the teacher's exact ODE paths, its Euler steps and the
average-velocity model's jumps from the same noise) and sample clouds at 1, 2 and 4 network
evaluations. The notebook computes every point; these functions only draw.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots

FLOWMAP_LIM = 3.2  # the trajectories' frame
FLOWMAP_SAMPLES_LIM = 4.2  # the samples' frame: one midpoint step lands up to |x| ~ 4
FLOWMAP_MODE_RADIUS = 0.6  # 3 data standard deviations: the off-mode share's discs
FLOWMAP_COLORS = {"exact": "0.35", "euler": "tab:orange", "flow map": "tab:blue", "mode": "tab:red"}


def _flowmap_modes(ax, means: Tensor, discs: bool = False) -> None:
    m = means.detach().numpy()
    if discs:
        for x, y in m:
            ax.add_patch(plt.Circle((x, y), FLOWMAP_MODE_RADIUS, color="0.85", zorder=0))
    ax.plot(m[:, 0], m[:, 1], "*", mfc="none", mec=FLOWMAP_COLORS["mode"], ms=11, mew=1.5, zorder=5)


def draw_flowmap_trajectories(
    exact: Tensor, euler: dict[int, Tensor], jumps: dict[int, Tensor], means: Tensor
) -> Figure:
    """One panel per step count n: exact teacher paths exact [T, M, 2] (dark grey, dashed, on
    top), the teacher's n Euler steps euler[n] [n + 1, M, 2] (orange) and the flow map's n
    jumps jumps[n] [n + 1, M, 2] (blue), all from the same M noise points (black dots);
    means [K, 2] the data's modes (red hollow stars)."""
    counts = sorted(euler)
    fig, axes = plots.new_axes(len(counts), size=4.4)
    ex = exact.detach().numpy()
    for ax, n in zip(axes, counts, strict=True):
        for key, states in (("euler", euler[n]), ("flow map", jumps[n])):
            s = states.detach().numpy()
            ax.plot(s[:, :, 0], s[:, :, 1], "-", color=FLOWMAP_COLORS[key], lw=1.6, alpha=0.85)
            ax.plot(s[-1, :, 0], s[-1, :, 1], "o", color=FLOWMAP_COLORS[key], ms=5)
        ax.plot(ex[:, :, 0], ex[:, :, 1], "--", color=FLOWMAP_COLORS["exact"], lw=0.9)
        ax.plot(ex[0, :, 0], ex[0, :, 1], "k.", ms=6)
        _flowmap_modes(ax, means)
        plots.square(ax, FLOWMAP_LIM)
        ax.set_title(f"{n} step{'s' if n > 1 else ''} ({n} evaluation{'s' if n > 1 else ''})")
    handles = [
        plt.Line2D([], [], color=FLOWMAP_COLORS["exact"], ls="--", label="exact teacher ODE"),
        plt.Line2D([], [], color=FLOWMAP_COLORS["euler"], marker="o", label="teacher, Euler"),
        plt.Line2D([], [], color=FLOWMAP_COLORS["flow map"], marker="o", label="flow map u_θ"),
        plt.Line2D([], [], color="k", marker=".", ls="", ms=8, label="noise x0"),
        plt.Line2D(
            [], [], color=FLOWMAP_COLORS["mode"], marker="*", mfc="none", ls="", label="data modes"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=10, frameon=False)
    fig.suptitle("From the same noise: Euler steps of the exact field vs the flow map's jumps")
    return fig


def draw_flowmap_samples(
    samples: dict[str, dict[int, Tensor]], distances: dict[str, dict[int, float]], means: Tensor
) -> Figure:
    """Rows = samplers (samples[name][nfe] [N, 2]), columns = network evaluations; each title
    gives the energy distance to the data (distances[name][nfe]) and the share of samples
    outside the frame, if any; grey discs of radius 0.6 around the modes means [K, 2] mark the
    off-mode share's region. A missing entry (midpoint at 1 evaluation) is an empty panel."""
    names = list(samples)
    nfes = sorted({n for d in samples.values() for n in d})
    lim = FLOWMAP_SAMPLES_LIM
    fig, axes = plots.new_axes(len(names) * len(nfes), size=3.3, ncols=len(nfes))
    for i, name in enumerate(names):
        for j, n in enumerate(nfes):
            ax = axes[i * len(nfes) + j]
            if n not in samples[name]:
                plots.square(ax, lim)
                ax.text(0, 0, f"{name}:\nneeds 2 evaluations", ha="center", va="center")
                ax.set_title(f"{name}, {n} eval.", fontsize=10)
                continue
            x = samples[name][n]
            _flowmap_modes(ax, means, discs=True)
            color = FLOWMAP_COLORS["flow map"] if i == 0 else FLOWMAP_COLORS["euler"]
            plots.scatter2d(ax, x, lim=lim, color=color, s=3.0, alpha=0.6)
            outside = (x.abs().amax(dim=1) > lim).double().mean().item()
            note = f", {100 * outside:.0f}% outside" if outside > 0 else ""
            title = f"{name}, {n} eval.\nenergy dist. {distances[name][n]:.4f}{note}"
            ax.set_title(title, fontsize=10)
    return fig
