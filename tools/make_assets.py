"""Make the README's figure: noise flowing into the checkerboard along the OT path.

    python tools/make_assets.py      # writes assets/hero.png
Every image in assets/ comes from a script in this repository.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from fmlib import data, plots, repro  # noqa: E402
from fmlib.paths import OTPath  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def hero(n: int = 6000, times: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> Path:
    """x_t = psi_t(x0 | x1) for x0 ~ N(0, I), x1 ~ checkerboard: samples of the marginal p_t."""
    generator = repro.seed_everything(0)
    plots.use_style()
    x0 = torch.randn(n, 2, generator=generator)
    x1 = data.sample("checkerboard", n, generator)
    path = OTPath(sigma_min=0.0)
    fig, axes = plots.new_axes(len(times), size=2.2)
    for ax, t in zip(axes, times, strict=True):
        plots.scatter2d(ax, path.psi_t(x0, x1, t), lim=4.8, color=plots.PATH_COLOR, s=1.5)
        ax.set_title(f"$p_t$, t = {t:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.suptitle("Flow matching: noise (t = 0) flows into data (t = 1) along the OT path")
    out = ASSETS / "hero.png"
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    print(hero())
