"""Model -> channel graph: the only place that touches ``torch.fx`` and ``torch.export``.

- :mod:`.tracer` traces a model (fx, or torch.export when fx cannot) and interprets
  its fx graph on index maps;
- :mod:`.export` the ``torch.export`` front-end (Hugging Face models);
- :mod:`.ops` the handler registry: what each op or module does to channels;
- :mod:`.aten` handlers for the ATen ops of an exported graph (attention heads as groups);
- :mod:`.idmaps` index maps, tensors whose elements hold their channel's node id;
- :mod:`.channels` the graph itself: node groups and blocks;
- :mod:`.weights` where a block's edge weights come from (live parameters);
- :mod:`.cache` one traced graph per model, for scores that re-read it.
"""

from netgraph.graph.cache import cached_trace
from netgraph.graph.channels import AttentionHeads, Block, ChannelGraph, NodeGroup, layer_key
from netgraph.graph.tracer import trace

__all__ = ["AttentionHeads", "Block", "ChannelGraph", "NodeGroup", "cached_trace", "layer_key", "trace"]
