"""Experiments: resumable sweeps of pruning methods over compression levels and seeds.

- :mod:`.sweep` the configuration, plan and single runs of a sweep;
- :mod:`.comparison` ``compare``: the run store, tables, critical compression, summary, figures.
"""

from netgraph.experiments.comparison import CompareResult, compare
from netgraph.experiments.sweep import SweepConfig

__all__ = ["CompareResult", "SweepConfig", "compare"]
