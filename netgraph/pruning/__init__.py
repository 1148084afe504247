"""Pruning: masks in ``torch.nn.utils.prune``'s format, scores, methods that hit a
target exactly (one-shot or iterated), and structural pruning with Torch-Pruning.

- :mod:`.masks` mask selection and bookkeeping (which weights are prunable:
  :func:`netgraph.parameters.prunable_parameters`);
- :mod:`.schedule` how many weights to keep, per target and per round;
- :mod:`.scores` random, magnitude, SNIP, GraSP, SynFlow (higher = keep);
- :mod:`.path_mass` CoNNect's path-mass score and its fast iterated loop;
- :mod:`.methods` one interface for a score used one-shot or iterated, and IMP;
- :mod:`.registry` the named methods, ``METHODS``;
- :mod:`.structured` structural pruning with DepGraph;
- :mod:`.importance` CoNNect's channel centrality as a Torch-Pruning importance.
"""

from netgraph.parameters import Param, effective_weight, prunable_parameters
from netgraph.pruning.importance import ConnectImportance
from netgraph.pruning.masks import (
    Scope,
    apply_masks,
    compression,
    current_masks,
    make_permanent,
    remaining,
    select_mask,
    sparsity,
    sync_weights,
    total_weights,
)
from netgraph.pruning.methods import PruningMethod, iterative_magnitude
from netgraph.pruning.registry import METHODS, register_method
from netgraph.pruning.scores import ScoreContext
from netgraph.pruning.structured import structural_prune

__all__ = [
    "METHODS",
    "ConnectImportance",
    "Param",
    "PruningMethod",
    "ScoreContext",
    "Scope",
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
