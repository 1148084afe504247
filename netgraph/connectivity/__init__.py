"""Channel graph -> connectivity, with scipy.sparse in float64 (DESIGN.md section 2).

- :mod:`.propagate` forward/backward flows, reachability and the path-mass formula;
- :mod:`.report` the per-layer and per-network :class:`ConnectivityReport`;
- :mod:`.export` edges with their path mass, networkx and GraphML;
- :mod:`.strip` zero the dead weights of a model, verified on random inputs.
"""

from netgraph.connectivity.export import to_networkx, write_graphml
from netgraph.connectivity.propagate import Flows, flows, path_mass
from netgraph.connectivity.report import ConnectivityReport, LayerReport, analyze
from netgraph.connectivity.strip import StripOutcome, strip_dead_weights

__all__ = [
    "ConnectivityReport",
    "Flows",
    "LayerReport",
    "StripOutcome",
    "analyze",
    "flows",
    "path_mass",
    "strip_dead_weights",
    "to_networkx",
    "write_graphml",
]
