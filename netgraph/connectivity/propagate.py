"""Input-output connectivity of a channel graph (scipy.sparse, float64).

Flows are propagated block by block in topological order, one block's matrix at
a time (a dense array for dense and diagonal blocks, else a CSR). Each node
group carries its vector normalised to max 1 plus its own log-scale, so a
1000-layer chain neither overflows nor underflows; results come out as logs
(``log_phi``, ``log_forward``, ``log_backward``).

* forward flow ``F``: 1 on input nodes, ``F_v = sum_{u->v} w_uv F_u``;
* backward flow ``B``: 1 on output nodes, ``B_u = sum_{u->v} w_uv B_v``;
* ``phi = sum_out F = sum_in B`` (the path sum); a node's centrality is
  ``F_v B_v / phi`` and an edge's path mass ``F_u w_uv B_v / phi``.

Reachability is the same propagation over the support (NaN/Inf count as
present; for flows they count as zero and are reported).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from netgraph.graph.channels import Block, ChannelGraph
from netgraph.graph.weights import Aggregation, DiagonalWeight
from netgraph.parameters import loaded, memoised


@dataclass
class Flows:
    """Forward/backward flows and reachability of every node of ``graph`` (see :func:`flows`).

    Flows are kept as logs (``log_forward``, ``log_backward``, ``log_phi``) so a
    1000-layer chain neither overflows nor underflows.

    Attributes
    ----------
    graph : ChannelGraph
    log_forward, log_backward : numpy.ndarray
        ``log F`` and ``log B`` per node (``-inf`` where the flow is 0).
    log_phi : float
        log of the path sum; ``-inf`` when the network is disconnected.
    reached, reaches_output : numpy.ndarray of bool
        Reachability from an input and to an output, over nonzero weights.
    how, normalized, balanced
        The edge aggregation, whether the flows are those of the normalised graph ``A~``,
        and whether its structural joins balance their incoming branches (:func:`flows`).

    Examples
    --------
    >>> import netgraph as ng
    >>> from torch import nn
    >>> result = ng.flows(ng.trace(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), input_shape=(4,)))
    >>> result.disconnected, int(result.alive.sum()), round(float(result.centrality()[result.graph.output_nodes].sum()), 6)
    (False, 9, 1.0)
    """

    graph: ChannelGraph
    log_forward: np.ndarray
    log_backward: np.ndarray
    log_phi: float
    reached: np.ndarray
    reaches_output: np.ndarray
    how: Aggregation = "l1"
    normalized: bool = False
    balanced: bool = False

    @property
    def alive(self) -> np.ndarray:
        """Nodes on at least one input->output path."""
        return self.reached & self.reaches_output

    @property
    def disconnected(self) -> bool:
        return not bool(self.alive[self.graph.output_nodes].any())

    def centrality(self) -> np.ndarray:
        """``F_v B_v / phi`` per node: the share of path mass through each node."""
        return path_mass(self.log_forward, self.log_backward, self.log_phi)

    def edge_path_mass(self, block: Block, how: Aggregation | None = None) -> np.ndarray:
        """``F_u w_uv B_v / phi`` for every grouped-form edge of ``block`` (``n_out x in_per_group``),
        in the graph these flows were propagated on (its aggregation, raw or ``A~``)."""
        how = how or self.how
        weights = block.source.grouped(how).detach().double().cpu().numpy()
        if self.normalized and block.kind == "param":
            weights = weights * math.exp(_block_reading(block, how, True)[1])
        log_f, log_b = _grouped_logs(block, self)
        mass = path_mass(log_f, log_b, self.log_phi, weights.reshape(block.groups, -1, block.in_per_group))
        return mass.reshape(block.n_out, block.in_per_group)


def path_mass(log_forward: np.ndarray, log_backward: np.ndarray, log_phi: float,
              weight: np.ndarray | None = None) -> np.ndarray:
    """The one path-mass formula: ``F_u w_uv B_v / phi`` from the log flows at each
    edge's two ends (arrays that broadcast together), or the edge's share of paths
    ``F_u B_v / phi`` when ``weight`` is None (a weight's score is then ``|w|`` times
    it). 0 where undefined: a disconnected net, a NaN/Inf weight."""
    shape = np.broadcast_shapes(np.shape(log_forward), np.shape(log_backward), np.shape(weight) if weight is not None else ())
    if not np.isfinite(log_phi):
        return np.zeros(shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mass = np.asarray(np.add(log_forward, log_backward))
        mass -= log_phi  # in place: an iterated score runs this on every edge every round
        if weight is not None:
            mass = mass + np.log(np.where(np.isfinite(weight), np.abs(weight), 0.0))
        np.exp(mass, out=mass)
    # a finite sum means every entry is (one pass); only then no pass to zero them
    return mass if np.isfinite(mass.sum()) else np.where(np.isfinite(mass), mass, 0.0)


def edge_share(block: Block, result: Flows, edges: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Path-mass share per unit of raw edge weight, for every grouped-form edge of
    ``block`` (``n_out x in_per_group``): ``F_u B_v / phi``, times the block's
    :func:`normalising_gain` when ``result`` holds the flows of ``A~`` (so that
    ``|w| * share`` is the weight's path mass in the graph that was propagated).
    Broadcast per group rather than gathered through :meth:`Block.channel_index`.

    ``edges``, a pair of index arrays ``(output channel, input position in its group)``,
    gives the same values for those edges only, as a 1-D array (``share[edges]`` of the
    full result): an iterated pruning reads the edges that still hold weights, a
    fraction of them in late rounds."""
    log_f, log_b = _grouped_logs(block, result)
    if edges is None:
        share = path_mass(log_f, log_b, result.log_phi).reshape(block.n_out, block.in_per_group)
    else:
        out, position = edges
        if block.groups > 1:  # log_f is per group: input position of the edge's group
            position = out // (block.n_out // block.groups) * block.in_per_group + position
        share = path_mass(log_f.reshape(-1)[position], log_b.reshape(-1)[out], result.log_phi)
    if result.normalized and block.kind == "param":
        share *= math.exp(_block_reading(block, result.how, True)[1])
    return share


def _grouped_logs(block: Block, result: Flows) -> tuple[np.ndarray, np.ndarray]:
    """log F per input channel as ``(groups, 1, in_per_group)`` and log B of the
    block's outputs as ``(groups, out_per_group, 1)``: they broadcast to its edges."""
    log_f = log_per_channel(block, result.log_forward).reshape(block.groups, 1, block.in_per_group)
    return log_f, result.log_backward[block.dst.nodes].reshape(block.groups, -1, 1)


def log_per_channel(block: Block, log_values: np.ndarray) -> np.ndarray:
    """log of the per-input-channel sum of node values given in log form."""
    logs = log_values[block.in_node]
    top = logs.max() if logs.size and np.isfinite(logs).any() else 0.0
    summed = np.bincount(block.in_chan, weights=np.exp(logs - top), minlength=block.n_in)
    with np.errstate(divide="ignore"):
        return np.log(summed) + top


def _clean(matrix: sp.csr_array) -> tuple[sp.csr_array, sp.csr_array]:
    """(flow matrix with NaN/Inf zeroed, support matrix where NaN/Inf count as edges).

    Weights are nonnegative, so with finite weights the flow matrix is its own support."""
    if np.isfinite(matrix.data).all():
        return matrix, matrix
    support = matrix.copy()
    support.data = (support.data != 0).astype(np.float64)
    flow = matrix.copy()
    flow.data = np.where(np.isfinite(flow.data), flow.data, 0.0)
    return flow, support


_ROWS_AT_ONCE = 1 << 22  # elements of a weight matrix converted at once (16 MiB in float32)


class _Workspace:
    """The buffer each dtype's converted dense weights reuse through one :func:`flows`.

    A fresh tensor per block pays for its pages every time (memory that large comes
    from the kernel, zero-filled on first touch): converting a 5632x2048 bf16 matrix
    took 52 ms into a new tensor and 6 ms into a reused one at 1 thread, which was half
    of the streaming analysis of a 1.1B checkpoint."""

    def __init__(self) -> None:
        self._buffers: dict[torch.dtype, torch.Tensor] = {}

    def converted(self, weights: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``weights.to(dtype)``, in a buffer the next call overwrites."""
        if weights.dtype == dtype:
            return weights
        buffer = self._buffers.get(dtype)
        if buffer is None or buffer.numel() < weights.numel():
            buffer = self._buffers[dtype] = torch.empty(weights.numel(), dtype=dtype)
        return buffer[: weights.numel()].view(weights.shape).copy_(weights)

    def matvec(self, weights: torch.Tensor, vector: np.ndarray, transpose: bool, dtype: torch.dtype) -> torch.Tensor:
        """``weights @ vector`` (``weights.T @ vector`` with ``transpose``) in ``dtype``,
        converting at most :data:`_ROWS_AT_ONCE` elements of ``weights`` at a time, so
        a vocabulary-sized matrix never exists in float32 whole (its copy was a third of
        the streaming analysis's peak memory). A matrix within the bound is one product."""
        x = torch.from_numpy(vector).to(dtype)
        rows = max(1, _ROWS_AT_ONCE // max(weights.shape[1], 1))
        if weights.shape[0] <= rows:
            dense = self.converted(weights, dtype)
            return torch.mv(dense.T if transpose else dense, x)  # torch's gemv honours set_num_threads
        out = torch.zeros(weights.shape[1] if transpose else weights.shape[0], dtype=dtype)
        for start in range(0, weights.shape[0], rows):
            part = self.converted(weights[start : start + rows], dtype)
            if transpose:
                out += torch.mv(part.T, x[start : start + rows])
            else:
                out[start : start + rows] = torch.mv(part, x)
        return out


def _dense_weights(block: Block, how: Aggregation, dtype: torch.dtype) -> tuple[torch.Tensor, torch.dtype] | None:
    """The block's grouped weights and the dtype to multiply them in, when they are its
    matrix up to a column permutation, as a dense ``(n_out, n_in)`` array (one group:
    every Linear/conv of a plain CNN) or a diagonal ``(n_out, 1)`` one (a norm layer),
    with input channels on distinct nodes; else None.

    A dense or elementwise product is several times faster than building a CSR.
    float32 is taken only for weights it holds exactly (16- and 32-bit floats), so no
    nonzero weight becomes zero; float64 weights stay float64."""
    diagonal = block.groups == block.n_out and block.in_per_group == 1
    if (block.groups != 1 and not diagonal) or len(block.src) != block.n_in or not block.one_per_channel:
        return None
    weights = block.source.grouped(how)
    if dtype == torch.float32 and weights.dtype in (torch.bfloat16, torch.float16, torch.float32):
        return weights.detach().cpu(), torch.float32
    return _float64(weights), torch.float64


def _float64(weights: torch.Tensor) -> torch.Tensor:
    """Grouped weights as float64 on the CPU, converted once inside
    :func:`~netgraph.parameters.reuse_weights` (the forward and backward products and the
    block's gain all read them in a scoring round; ``weights`` as ``grouped`` gives them,
    which is the same tensor in there)."""
    return memoised(("float64", id(weights)), weights, lambda: weights.detach().to("cpu", torch.float64))


def _dense_apply(
    block: Block, weights: torch.Tensor, dtype: torch.dtype, flow: np.ndarray, support: np.ndarray,
    transpose: bool, workspace: _Workspace,
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_apply` with the dense weights; None when a weight is NaN/Inf or a product
    overflows (any such weight makes its row's, or column's, result non-finite, even
    where the vector is 0), so the CSR path cleans them."""
    cols = block.pair_col  # column of input channel j; a permutation here
    if block.groups > 1:  # diagonal: exactly the one-term rows of the CSR product
        gain = workspace.converted(weights, dtype).numpy()[:, 0]
        if transpose:
            flow_out, support_out = np.empty(len(cols)), np.empty(len(cols))
            flow_out[cols], support_out[cols] = gain * flow, gain * support
        else:
            flow_out, support_out = gain * flow[cols], gain * support[cols]
        if not (np.isfinite(flow_out).all() and np.isfinite(support_out).all()):
            return None
        return flow_out, support_out > 0
    if not transpose:
        flow, support = flow[cols], support[cols]
    # two gemv beat one n=2 gemm
    flow_out = workspace.matvec(weights, flow, transpose, dtype).double().numpy()
    if not np.isfinite(flow_out).all():
        return None
    # Nonnegative weights: where the flow is positive exactly on the support, a positive
    # output flow proves a supported nonzero edge; only zero outputs need the support product.
    if (flow_out > 0).all() and np.array_equal(flow > 0, support > 0):
        support_out = np.ones(len(flow_out), dtype=bool)
    else:
        support_out = workspace.matvec(weights, support, transpose, dtype).numpy() > 0
    if not transpose:
        return flow_out, support_out
    out_flow, out_support = np.empty(len(cols)), np.empty(len(cols), dtype=bool)
    out_flow[cols], out_support[cols] = flow_out, support_out
    return out_flow, out_support


def _apply(
    block: Block, how: Aggregation, flow: np.ndarray, support: np.ndarray, transpose: bool,
    dtype: torch.dtype, workspace: _Workspace,
) -> tuple[np.ndarray, np.ndarray]:
    """``(A @ flow, S @ support > 0)``, with ``A`` the block's flow matrix and ``S`` its
    support (see :func:`_clean`), or their transposes: from :attr:`Block.src` nodes to the
    block's group, or back (dense products in ``dtype`` where :func:`_dense_weights` allows)."""
    dense = _dense_weights(block, how, dtype)
    if dense is not None:
        done = _dense_apply(block, *dense, flow, support, transpose, workspace)
        if done is not None:
            return done
    matrix, supp = _clean(block.matrix(how))
    if transpose:
        matrix, supp = matrix.T, supp.T
    return matrix @ flow, supp @ support > 0


class _ScaledVector:
    """A per-node vector stored as ``values * exp(log_scale[group])`` with values <= 1."""

    def __init__(self, graph: ChannelGraph) -> None:
        self.values = np.zeros(graph.n_nodes)
        self.log_scale = np.full(len(graph.groups), -np.inf)
        self.node_group = graph.node_group
        self.group_index = {id(g): i for i, g in enumerate(graph.groups)}

    def gather(self, nodes: np.ndarray) -> tuple[np.ndarray, float]:
        """Values at ``nodes`` on one common scale, and that scale (log)."""
        scales = self.log_scale[self.node_group[nodes]]
        if nodes.size == 0 or not np.isfinite(scales).any():
            return np.zeros(nodes.size), -np.inf
        top = scales[np.isfinite(scales)].max()
        with np.errstate(invalid="ignore"):
            factor = np.where(np.isfinite(scales), np.exp(scales - top), 0.0)
        return self.values[nodes] * factor, float(top)

    def assign(self, group_nodes: np.ndarray, group: int, values: np.ndarray, log_scale: float) -> None:
        peak = values.max() if values.size else 0.0
        if peak > 0 and np.isfinite(log_scale):
            self.values[group_nodes] = values / peak
            self.log_scale[group] = log_scale + np.log(peak)

    def add(self, nodes: np.ndarray, values: np.ndarray, log_scale: float) -> None:
        """Accumulate ``values * exp(log_scale)`` into (sorted, distinct) ``nodes``."""
        if not np.isfinite(log_scale) or not values.any():
            return
        groups = self.node_group[nodes]
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for part in np.split(np.arange(nodes.size), bounds):
            group = groups[part[0]]
            current = self.log_scale[group]
            if log_scale > current:
                if np.isfinite(current):
                    members = self.node_group == group
                    self.values[members] *= np.exp(current - log_scale)
                self.log_scale[group] = log_scale
                self.values[nodes[part]] += values[part]
            else:
                self.values[nodes[part]] += values[part] * np.exp(log_scale - current)

    def normalise(self, group_nodes: np.ndarray, group: int) -> None:
        peak = self.values[group_nodes].max() if group_nodes.size else 0.0
        if peak > 0:
            self.values[group_nodes] /= peak
            self.log_scale[group] += np.log(peak)

    def logs(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.values) + self.log_scale[self.node_group]


def normalising_gain(block: Block, total: float) -> float:
    """``m_b / ||A_b||_1`` with ``m_b = min(n_in, n_out)``: the factor that gives a
    parametric block of mass ``total`` the normalised mass of DESIGN.md section 3
    (each block then carries a comparable mass, whatever its layer's scale)."""
    return min(len(block.src), block.n_out) / total if total > 0 else 0.0


def _block_reading(block: Block, how: Aggregation, normalize: bool) -> tuple[Aggregation, float]:
    """How to read a block, and its log gain: raw, or in the normalised graph ``A~``
    (parametric blocks scaled by :func:`normalising_gain`, norm-layer gains 1 on their support)."""
    if not normalize or block.kind not in ("param", "diag"):
        return how, 0.0
    if block.kind == "diag":
        return ("count", 0.0) if isinstance(block.source, DiagonalWeight) else (how, 0.0)
    weights = _float64(block.source.grouped(how))
    # NaN/Inf carry no flow; summed once per round inside reuse_weights (three readings per block)
    total = float(memoised(("finite sum", id(weights)), weights, lambda: _finite_sum(weights)))
    gain = normalising_gain(block, total)
    return how, (math.log(gain) if gain > 0 else 0.0)


def _finite_sum(weights: torch.Tensor) -> torch.Tensor:
    """The sum of the finite ``weights`` (NaN/Inf carry no flow); the plain sum where it
    is finite, as it is unless one of them is not (no pass to zero them)."""
    total = weights.sum()
    return total if bool(torch.isfinite(total)) else weights.nan_to_num(nan=0.0, posinf=0.0).sum()


def flows(
    graph: ChannelGraph,
    how: Aggregation = "l1",
    normalize: bool = False,
    balance_joins: bool = False,
    *,
    dense_dtype: torch.dtype = torch.float64,
    on_backward: Callable[[Block, np.ndarray, np.ndarray], None] | None = None,
) -> Flows:
    """Propagate flows and reachability through ``graph`` (DESIGN.md section 2).

    ``F = 1`` on inputs, ``F_v = sum_u w_uv F_u``; ``B = 1`` on outputs,
    ``B_u = sum_v w_uv B_v``; ``phi = sum_out F``. Block by block, one sparse
    matrix at a time, in float64 with a log-scale per node group.

    Parameters
    ----------
    graph : ChannelGraph
        From :func:`netgraph.trace`.
    how : {"l1", "l2", "count", "nonfinite"}
        How an edge aggregates its kernel slice: sum of ``|w|`` (unstructured, the
        default), L2 norm (structured), count of nonzeros.
    normalize : bool
        Propagate on CoNNect's normalised graph ``A~`` instead of the raw weights
        (the CoNNect score reads it).
    balance_joins : bool
        At every structural join fed by several node groups (a residual add, a gate),
        scale each group's flow so that every incoming branch delivers the same forward
        mass into the join, their total unchanged (:func:`_join_factors`): the per-branch
        analogue of ``A~``'s per-block normalisation, which the CoNNect score reads so a
        one-layer shortcut keeps the share of the multi-layer branch beside it. A graph
        without such joins (a chain) propagates exactly as without it.
    dense_dtype : torch.dtype
        ``torch.float32`` runs the dense products of 16/32-bit weights in single
        precision (the streaming analysis: converting to float64 costs more than reading
        the file). Flows then carry float32 rounding (relative 1e-6 per block, rescaled
        per block so nothing overflows); reachability stays exact, since a 0/1 vector
        times nonnegative weights is zero only where every product is.
    on_backward : callable, optional
        Called as ``on_backward(block, reached, reaches)`` for every block the backward
        sweep reads, while its tensors are loaded and once ``reaches`` holds its inputs
        (the streaming report counts a layer's weights there instead of reading them again).

    Returns
    -------
    Flows

    Examples
    --------
    An MLP's path sum is ``1^T |W_2| |W_1| 1``:

    >>> import math, torch, netgraph as ng
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    >>> result = ng.flows(ng.trace(model, input_shape=(4,)))
    >>> closed_form = (model[2].weight.abs() @ model[0].weight.abs()).sum().item()  # float32
    >>> math.isclose(math.exp(result.log_phi), closed_form, rel_tol=1e-6)
    True
    """
    forward = _ScaledVector(graph)
    forward.values[graph.input_nodes] = 1.0
    for node in graph.input_nodes:
        forward.log_scale[forward.node_group[node]] = 0.0
    reached = np.zeros(graph.n_nodes, dtype=bool)
    reached[graph.input_nodes] = True
    group_of = forward.group_index

    join_factors: dict[int, np.ndarray] = {}
    workspace = _Workspace()
    for block in graph.blocks:
        factors = _join_factors(block, forward, how) if balance_joins else None
        if factors is None:
            x, scale = forward.gather(block.src)
        else:
            join_factors[id(block)] = factors
            x, scale = _balanced_input(block, forward, factors)
        with loaded(block.source.module):
            reading, log_gain = _block_reading(block, how, normalize)
            flow, support = _apply(block, reading, x, reached[block.src].astype(np.float64), False, dense_dtype,
                                   workspace)
        forward.assign(block.dst.nodes, group_of[id(block.dst)], flow, scale + log_gain)
        reached[block.dst.nodes] = support

    backward = _ScaledVector(graph)
    backward.values[graph.output_nodes] = 1.0
    backward.log_scale[np.unique(backward.node_group[graph.output_nodes])] = 0.0
    reaches = np.zeros(graph.n_nodes, dtype=bool)
    reaches[graph.output_nodes] = True
    for block in reversed(graph.blocks):
        dst = block.dst.nodes
        group = group_of[id(block.dst)]
        if not reaches[dst].any():
            continue
        backward.normalise(dst, group)
        with loaded(block.source.module):
            reading, log_gain = _block_reading(block, how, normalize)
            flow, support = _apply(block, reading, backward.values[dst], reaches[dst].astype(np.float64),
                                   True, dense_dtype, workspace)
            factors = join_factors.get(id(block))
            if factors is None:
                backward.add(block.src, flow, backward.log_scale[group] + log_gain)
            else:  # B_u = c_u sum_v w_uv B_v: one add per incoming group (one factor each)
                for value in np.unique(factors):
                    part = factors == value
                    backward.add(block.src[part], flow[part], backward.log_scale[group] + log_gain + value)
            reaches[block.src] |= support
            if on_backward is not None:
                on_backward(block, reached, reaches)

    log_forward, log_backward = forward.logs(), backward.logs()
    out_logs = log_forward[graph.output_nodes]
    log_phi = _logsumexp(out_logs)
    return Flows(graph, log_forward, log_backward, log_phi, reached, reaches, how, normalize, balance_joins)


def _join_factors(block: Block, forward: _ScaledVector, how: Aggregation) -> np.ndarray | None:
    """Log factor ``log c_u`` of every :attr:`Block.src` node of a structural join that
    balances its incoming branches, or None when ``block`` is no such join.

    A branch is a node group feeding the join; it delivers ``S_i = sum_u (sum_v w_uv) F_u``
    over its nodes. Scaling each by ``c_i = (sum_i S_i / n) / S_i`` (``n`` branches that
    carry flow; a dead one keeps ``c = 1``, it carries nothing) makes them deliver the
    same mass and leaves the total unchanged. The join's edges become ``w_uv c_u``: a
    graph, so path masses still add up (backward flows read the same factors)."""
    if block.kind != "struct":
        return None
    groups, member = np.unique(forward.node_group[block.src], return_inverse=True)
    if groups.size < 2:
        return None
    delivered = np.asarray(block.matrix(how).sum(axis=0)).ravel() * forward.values[block.src]
    with np.errstate(divide="ignore"):
        log_mass = np.log(np.bincount(member, weights=delivered, minlength=groups.size)) + forward.log_scale[groups]
    live = np.isfinite(log_mass)
    if live.sum() < 2:
        return None
    target = _logsumexp(log_mass) - math.log(live.sum())
    return np.where(live, target - np.where(live, log_mass, 0.0), 0.0)[member]


def _balanced_input(block: Block, forward: _ScaledVector, factors: np.ndarray) -> tuple[np.ndarray, float]:
    """``c_u F_u`` over :attr:`Block.src` on one common scale, and that scale (log):
    what :meth:`_ScaledVector.gather` gives an unbalanced block. Every live branch
    delivers the same mass on that scale (at least its peak node's), so none underflows
    however unequal the branches were."""
    logs = forward.log_scale[forward.node_group[block.src]] + factors
    finite = np.isfinite(logs)
    top = float(logs[finite].max())
    with np.errstate(invalid="ignore"):
        return np.where(finite, forward.values[block.src] * np.exp(logs - top), 0.0), top


def _logsumexp(logs: np.ndarray) -> float:
    finite = logs[np.isfinite(logs)]
    if finite.size == 0:
        return -np.inf
    top = finite.max()
    return float(top + np.log(np.exp(finite - top).sum()))


def log_phi_from_inputs(result: Flows) -> float:
    """``log sum_in B``: equals ``log_phi`` (a consistency check of the two sweeps)."""
    return _logsumexp(result.log_backward[result.graph.input_nodes])
