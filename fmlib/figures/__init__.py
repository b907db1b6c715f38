"""The notebook widgets' views and static figures, one module per notebook topic; and REGISTRY,
the one list of widget panels.

A new panel is two places: its view (a `fmlib.plots.LiveFigure` subclass in a module here) and
its `Entry` in REGISTRY. From the entry, the notebook's `widgets.panel(view)` needs nothing
else, `make bench` times its redraws from `values`, the tests check it, and `make site`
pre-renders its frames into the page of `notebook`. Entries name their view by text
("module.Class") and import it only when asked, so importing one figure module does not
import the others.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from fmlib.plots import LiveFigure

SITE_FRAMES = 96  # frames a panel gets on the static site (~25 kB each)


@dataclass(frozen=True)
class Entry:
    """One widget panel.

    view: "module.Class" (a module of fmlib/figures, else any importable module),
        the LiveFigure class, or a zero-argument function returning the view (for a view over
        data: trained models, precomputed sweeps).
    notebook: the notebook whose `widgets.panel(` cell shows it (its file name without
        .ipynb), in the order of those cells; None for a benchmark setting only.
    values: the benchmark's and the tests' values (each control's default for the rest).
    site_frames: most frames pre-rendered for the static site; None: not on the site.
    name: the name in tables (default: view); a second entry of one view names its setting.
    """

    view: str
    notebook: str | None = None
    values: dict = field(default_factory=dict)
    site_frames: int | None = SITE_FRAMES
    name: str = ""

    def __post_init__(self) -> None:
        if "." not in self.view:
            raise ValueError(f"view must be 'module.Class', got {self.view!r}")
        if self.site_frames is not None and self.site_frames < 1:
            raise ValueError(f"site_frames must be >= 1 or None, got {self.site_frames}")
        if not self.name:
            object.__setattr__(self, "name", self.view)

    def factory(self) -> Callable[[], LiveFigure]:
        """The view's class (or its zero-argument factory), imported now."""
        module, attribute = self.view.rsplit(".", 1)
        if importlib.util.find_spec(f"{__name__}.{module}") is not None:  # a figure module
            module = f"{__name__}.{module}"
        return getattr(importlib.import_module(module), attribute)

    def make(self) -> LiveFigure:
        """A new view, as the notebook's panel shows it."""
        view = self.factory()()
        if not isinstance(view, LiveFigure):
            raise ValueError(f"view must make a LiveFigure, got {type(view).__name__}")
        return view


REGISTRY: list[Entry] = [
    Entry("start.ConditionalPath", "00_start_here", {"sigma_min": 0.1, "steps": 10}),
    Entry(
        "change_of_variables.ResidualFlow",
        "01_change_of_variables",
        {"sigma_min": 0.1, "steps": 10},
    ),
    Entry(
        "cnf.ODEDensity",
        "02_continuous_normalizing_flows",
        {"sigma_min": 0.3, "method": "rk4", "steps": 20, "t": 1.0},
    ),
    Entry(
        "continuity.Continuity", "03_continuity_equation", {"sigma_min": 0.0, "t": 0.5, "steps": 10}
    ),
    Entry(
        "continuity.Continuity",
        None,
        {"field": "scaled ×1.5", "n": 65},
        name="continuity.Continuity, wrong field",
    ),
    Entry(
        "marginalization.Marginalization",
        "04_marginalization_trick",
        {"sigma_min": 0.05, "t": 0.5, "steps": 20, "n_points": 10},
    ),
    Entry(
        "marginalization.Marginalization",
        None,
        {"sigma_min": 0.05, "t": 0.5, "steps": 50, "n_points": 50},
        name="marginalization.Marginalization, 50 points",
    ),
    Entry(
        "training.bench_view",
        "05_cfm_training",
        {"sigma_min": 0.1, "steps": 16, "t": 0.5},
        name="training.FlowAtlasView",
    ),
    Entry(
        "sampling.bench_view",
        "06_sampling",
        {"sigma_min": 0.1, "solver": "rk4", "steps": 16, "batch": 1000, "t": 0.35},
        name="sampling.SamplesView",
    ),
    Entry(
        "paths_compared.PathsCompared",
        "07_paths_compared",
        {"path": "VP", "sigma_min": 0.0, "steps": 8, "t": 0.5},
    ),
    Entry(
        "couplings.bench_view",
        "08_couplings",
        {"coupling": "minibatch OT", "batch_size": 8, "sigma_min": 0.0, "steps": 8, "t": 0.5},
        name="couplings.CouplingsView",
    ),
    Entry(
        "guidance.Guidance",
        "09_guidance",
        {"w": 2.0, "y": "0", "sigma_min": 0.0, "steps": 16, "t": 0.5},
    ),
    Entry(
        "diffusion.SDESampler",
        "12_flows_and_diffusion",
        {"gamma": 2.0, "sampler": "SDE", "steps": 32, "sigma_min": 0.0, "t": 0.5},
    ),
    Entry(
        "discrete.DiscretePath",
        "10_discrete_flow_matching",
        {"steps": 8, "power": 2.0, "source": "mask", "t": 0.5},
    ),
    Entry(
        "manifolds.bench_view",
        "13_riemannian_flow_matching",
        {"target": "logmap(x0, x1)", "steps": 8, "t": 0.5},
        name="manifolds.ManifoldView",
    ),
    Entry(
        "adaptation.PosteriorSampling",
        "11_model_adaptation",
        {"sigma_y": 0.2, "method": "DPS", "steps": 64, "t": 0.5},
    ),
    Entry(
        "digits.Digits",
        "14_digits",
        {"w": 2.0, "y": "3", "steps": 16, "t": 0.5},
    ),
]


def entries(module: str | None = None) -> list[Entry]:
    """The registry's entries (those of one figure module, e.g. "continuity", when given)."""
    return [e for e in REGISTRY if module is None or e.view.split(".")[0] == module]


def all_views(module: str | None = None) -> list[tuple[str, Callable[[], LiveFigure], dict]]:
    """(name, zero-argument view factory, values) of every entry: what tests parametrize over."""
    return [(e.name, e.make, dict(e.values)) for e in entries(module)]
