"""The theory lab: the optimal discriminator and V(G, D*) = -log 4 + 2 JSD made visible
on toy data (`gankit theory`). core.py holds the pure identities, objectives.py each loss's
optimum (closed form and trained to convergence), lab.py the experiment."""
from .core import (TOYS, Mixture, jsd, jsd_bound, kde_on_grid, kl, optimal_discriminator, toy, value,
                   value_at_optimum)
from .lab import run_theory
from .objectives import OBJECTIVES, converge_discriminator, pearson_chi2, tv

__all__ = ["OBJECTIVES", "TOYS", "Mixture", "converge_discriminator", "jsd", "jsd_bound", "kde_on_grid", "kl",
           "optimal_discriminator", "pearson_chi2", "run_theory", "toy", "tv", "value", "value_at_optimum"]
