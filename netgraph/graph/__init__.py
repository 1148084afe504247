"""Model -> channel graph: the only place that touches ``torch.fx``.

- :mod:`.tracer` traces a model and interprets its fx graph on index maps;
- :mod:`.ops` the handler registry: what each op or module does to channels;
- :mod:`.idmaps` index maps, tensors whose elements hold their channel's node id;
- :mod:`.channels` the graph itself: node groups and blocks;
- :mod:`.weights` where a block's edge weights come from (live parameters);
- :mod:`.cache` one traced graph per model, for scores that re-read it.
"""

from netgraph.graph.cache import cached_trace
from netgraph.graph.channels import Block, ChannelGraph, NodeGroup, layer_key
from netgraph.graph.tracer import trace

__all__ = ["Block", "ChannelGraph", "NodeGroup", "cached_trace", "layer_key", "trace"]
