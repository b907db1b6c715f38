"""Notebook 11, section 1: few steps of a flow map against a teacher's Euler steps.

Two static figures: trajectories (the teacher's exact ODE paths, its Euler steps and the
average-velocity model's jumps from the same noise) and sample clouds at 1, 2 and 4
network evaluations. The notebook computes every point; these functions only draw.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots

FLOWMAP_LIM = 3.2
FLOWMAP_COLORS = {"exact": "0.6", "euler": "tab:orange", "flow map": "tab:blue"}


def draw_flowmap_trajectories(
    exact: Tensor, euler: dict[int, Tensor], jumps: dict[int, Tensor], means: Tensor
) -> Figure:
    """One panel per step count n: exact teacher paths exact [T, M, 2] (grey), the teacher's
    n Euler steps euler[n] [n + 1, M, 2] (orange) and the flow map's n jumps jumps[n]
    [n + 1, M, 2] (blue), all from the same M noise points; means [K, 2] the data's modes."""
    counts = sorted(euler)
    fig, axes = plots.new_axes(len(counts), size=4.0)
    for ax, n in zip(axes, counts, strict=True):
        ex = exact.detach().numpy()
        ax.plot(ex[:, :, 0], ex[:, :, 1], color=FLOWMAP_COLORS["exact"], lw=0.8)
        for key, states in (("euler", euler[n]), ("flow map", jumps[n])):
            s = states.detach().numpy()
            ax.plot(s[:, :, 0], s[:, :, 1], "-", color=FLOWMAP_COLORS[key], lw=1.2, alpha=0.9)
            ax.plot(s[-1, :, 0], s[-1, :, 1], "o", color=FLOWMAP_COLORS[key], ms=4)
        ax.plot(ex[0, :, 0], ex[0, :, 1], "k.", ms=4)
        ax.plot(means[:, 0], means[:, 1], "*", color="k", ms=9)
        plots.square(ax, FLOWMAP_LIM)
        ax.set_title(f"{n} step{'s' if n > 1 else ''} ({n} evaluation{'s' if n > 1 else ''})")
    handles = [
        plt.Line2D([], [], color=FLOWMAP_COLORS["exact"], label="exact teacher ODE"),
        plt.Line2D([], [], color=FLOWMAP_COLORS["euler"], marker="o", label="teacher, Euler"),
        plt.Line2D([], [], color=FLOWMAP_COLORS["flow map"], marker="o", label="flow map u_θ"),
        plt.Line2D([], [], color="k", marker="*", ls="", label="data modes"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=10, frameon=False)
    fig.suptitle("From the same noise (black dots): Euler steps of the exact field vs jumps")
    return fig


def draw_flowmap_samples(
    samples: dict[str, dict[int, Tensor]], distances: dict[str, dict[int, float]]
) -> Figure:
    """Rows = samplers (samples[name][nfe] [N, 2]), columns = network evaluations; each
    title gives the energy distance to the data (distances[name][nfe]); a missing entry
    (midpoint at 1 evaluation) is an empty panel that says so."""
    names = list(samples)
    nfes = sorted({n for d in samples.values() for n in d})
    fig, axes = plots.new_axes(len(names) * len(nfes), size=2.6, ncols=len(nfes))
    for i, name in enumerate(names):
        for j, n in enumerate(nfes):
            ax = axes[i * len(nfes) + j]
            if n not in samples[name]:
                plots.square(ax, FLOWMAP_LIM)
                ax.text(0, 0, f"{name}:\nneeds 2 evaluations", ha="center", va="center")
                ax.set_title(f"{name}, {n} eval.", fontsize=9)
                continue
            color = FLOWMAP_COLORS["flow map"] if i == 0 else FLOWMAP_COLORS["euler"]
            plots.scatter2d(ax, samples[name][n], lim=FLOWMAP_LIM, color=color, s=1.5)
            ax.set_title(f"{name}, {n} eval.\nenergy dist. {distances[name][n]:.4f}", fontsize=9)
    return fig
