"""CoNNect as a data-free score: each weight's share of input-output path mass.

``F_u |theta| B_v / phi`` (DESIGN.md section 3), computed from the scipy flows of
:mod:`netgraph.connectivity` in the graph :func:`score_flows` propagates; pruning
iterates it on SynFlow's schedule (:mod:`netgraph.pruning.path_mass`).
"""

from __future__ import annotations

import math

import torch

from netgraph.connectivity.propagate import Flows, edge_share, flows
from netgraph.graph.channels import ChannelGraph


def score_flows(graph: ChannelGraph) -> Flows:
    """The flows the CoNNect score reads: CoNNect's normalised graph ``A~`` (every block
    carries mass ``m_b``) with balanced joins (every branch entering a residual add
    delivers the same forward mass into it, see :func:`~netgraph.connectivity.propagate.flows`).

    Why both: raw shares halve at every extra layer of a branch's scale, so SynFlow-like
    scores remove a ResNet's 1x1 projection shortcut (one conv) before the conv pair beside
    it. ``A~`` alone fixes each block's mass but not a branch's: once a two-conv branch
    is sparse, its few surviving paths carry products of two block masses against the
    shortcut's one (``16 * 32`` against ``16`` with one weight per layer), its share at
    the add grows towards 1 and the shortcut's last weights fall below the global
    threshold (ResNet-20 at init: the shortcut's share fell from 0.5 to 0.04 and it
    collapsed near ``10^2.7``). Balancing every join keeps each branch's share, so a
    branch's last weights carry a large share and none collapses first. The regulariser
    ``R`` keeps ``A~`` alone (DESIGN.md section 3); in a graph without joins (a chain,
    VGG) the score is exactly the ``A~`` one."""
    return flows(graph, normalize=True, balance_joins=True)


def connect_scores(graph: ChannelGraph, flows: Flows) -> dict[str, torch.Tensor]:
    """Data-free CoNNect score of every prunable weight: its share of path mass
    ``F_u |theta| B_v / phi`` (a kernel slice's elements split their edge's mass
    by magnitude), in the graph ``flows`` were propagated on: raw, SynFlow's score at
    channel granularity, or the graph the CoNNect score reads (:func:`score_flows`),
    where every block and every branch into a join carries a comparable mass, so a light
    parallel branch (a 1x1 projection shortcut) is not the first to go. In a chain the
    two agree. Keyed like :meth:`ChannelGraph.layers`."""
    scores: dict[str, torch.Tensor] = {}
    if not math.isfinite(flows.log_phi):
        return {key: torch.zeros(blocks[0].source.parameter().shape) for key, blocks in graph.layers().items()}
    for key, blocks in graph.layers().items():
        source = blocks[0].source
        if len(blocks) == 1 and source.region() == (slice(None),):
            # One block reads the whole tensor: |theta| * share in place on one float64 copy
            # (no zero-filled sum; a float32 * float64 broadcast product is far slower).
            per_edge = source.to_parameter(torch.from_numpy(edge_share(blocks[0], flows)))
            magnitude = source.parameter().detach().to("cpu", torch.float64, copy=True).abs_()
            scores[key] = finite_scores(magnitude.mul_(per_edge))
            continue
        weight = source.parameter().detach().abs().to("cpu", torch.float64)
        score = torch.zeros_like(weight)
        for block in blocks:
            region = block.source.region()
            score[region] += weight[region] * block.source.to_parameter(torch.from_numpy(edge_share(block, flows)))
        scores[key] = finite_scores(score)
    return scores


def finite_scores(score: torch.Tensor) -> torch.Tensor:
    """``score`` (nonnegative path-mass shares) with NaN and +Inf set to 0, in place.
    A finite sum means there are none, which one reduction tells."""
    return score if bool(torch.isfinite(score.sum())) else score.nan_to_num_(nan=0.0, posinf=0.0)
