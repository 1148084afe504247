"""Experiments: resumable sweeps of pruning methods over compression levels and seeds.

- :mod:`.store` resumable units on disk (a unit is finished when its record is
  written, last and atomically) and the identity check of an output directory;
- :mod:`.tables` CSV / markdown tables, mean ± std, paired same-seed differences;
- :mod:`.sweep` the configuration, plan and single runs of a comparison sweep;
- :mod:`.comparison` ``compare``: runs the sweep through the store, then the
  tables, critical compressions, summary and figures.

The analysis scripts (``analysis/``) build on :mod:`.store` and :mod:`.tables` too.
"""

from netgraph.experiments.comparison import CompareResult, compare
from netgraph.experiments.sweep import SweepConfig
from netgraph.experiments.tables import PairedDifference, mean_std, paired_differences

__all__ = ["CompareResult", "PairedDifference", "SweepConfig", "compare", "mean_std", "paired_differences"]
