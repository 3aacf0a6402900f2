"""The theory lab: the optimal discriminator and V(G, D*) = -log 4 + 2 JSD made visible
on toy data (`gankit theory`). core.py holds the pure identities, lab.py the experiment."""
from .core import (TOYS, Mixture, jsd, jsd_bound, kde_on_grid, kl, optimal_discriminator, toy, value,
                   value_at_optimum)
from .lab import run_theory

__all__ = ["TOYS", "Mixture", "jsd", "jsd_bound", "kde_on_grid", "kl", "optimal_discriminator", "run_theory",
           "toy", "value", "value_at_optimum"]
