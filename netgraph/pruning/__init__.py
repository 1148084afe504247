"""Pruning: masks in ``torch.nn.utils.prune``'s format, scores, methods that hit a
target exactly (one-shot or iterated), and a Torch-Pruning adapter for channels.

- :mod:`.masks` which weights are prunable, mask selection and bookkeeping;
- :mod:`.schedule` how many weights to keep, per target and per round;
- :mod:`.scores` random, magnitude, SNIP, GraSP, SynFlow (higher = keep);
- :mod:`.methods` the ``METHODS`` registry and iterative magnitude pruning;
- :mod:`.torch_pruning` structural pruning with DepGraph;
- :mod:`.connect_score` CoNNect's path-mass score and its DepGraph importance.
"""

from netgraph.pruning.masks import (
    apply_masks,
    compression,
    current_masks,
    effective_weight,
    make_permanent,
    prunable_parameters,
    remaining,
    select_mask,
    sparsity,
    sync_weights,
    total_weights,
)
from netgraph.pruning.methods import METHODS, PruningMethod, iterative_magnitude, register_method
from netgraph.pruning.scores import ScoreContext
from netgraph.pruning.torch_pruning import structural_prune
from netgraph.pruning.connect_score import ConnectImportance  # registers the "connect" method

__all__ = [
    "METHODS",
    "ConnectImportance",
    "PruningMethod",
    "ScoreContext",
    "apply_masks",
    "compression",
    "current_masks",
    "effective_weight",
    "iterative_magnitude",
    "make_permanent",
    "prunable_parameters",
    "register_method",
    "remaining",
    "select_mask",
    "sparsity",
    "structural_prune",
    "sync_weights",
    "total_weights",
]
