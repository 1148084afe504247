"""Channel graph -> CoNNect, in torch (DESIGN.md section 3).

- :mod:`.regularizer` the differentiable regularizer ``R = -log phi(A~)``;
- :mod:`.scores` the data-free path-mass score of every weight.
"""

from netgraph.connect.regularizer import CoNNect, DisconnectedWarning
from netgraph.connect.scores import connect_scores

__all__ = ["CoNNect", "DisconnectedWarning", "connect_scores"]
