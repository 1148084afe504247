"""Connectivity (DESIGN.md section 2) against brute force: phi, flows, alive and dead sets.

Random small DAGs are built as real ``nn.Module``s (grouped convs, eval BatchNorm,
skip adds, channel concats, zeroed weights). Independently of netgraph, the test
builds the channel DAG from the module weights by hand (edge weight = sum |w|
over the kernel slice, |gamma|/sqrt(var+eps) for BN, 1 for an add), enumerates
every input->output path with networkx, and compares.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from netgraph.connectivity.propagate import edge_share, flows, log_phi_from_inputs
from netgraph.connectivity.report import alive_weight_masks, analyze
from netgraph.graph.tracer import trace
from netgraph.graph.weights import aggregate_slices

pytestmark = pytest.mark.usefixtures("one_thread")

# ---------------------------------------------------------------- random DAG modules


class RandomDag(nn.Module):
    """A random plan of convs, BNs, adds and concats over a list of activations.

    ``self.refs[t]`` lists the reference node of every channel of activation ``t``
    (activation 0 is the input). Conv/BN/add outputs are new nodes; a concat only
    re-lists existing ones, exactly as the channel graph defines them.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.ModuleDict()
        self.plan: list[tuple] = []
        self.ref = nx.DiGraph()
        self.adds: list[tuple[int, list[str]]] = []
        self.n_edges = 0  # structural channel edges, zero weights included
        c_in = int(rng.integers(1, 4))
        self.c_in = c_in
        self.refs: list[list[str]] = [[f"in{c}" for c in range(c_in)]]
        for step in range(int(rng.integers(4, 8))):
            kind = rng.choice(["conv", "conv", "conv", "bn", "add", "cat"])
            t = int(rng.integers(max(0, len(self.refs) - 3), len(self.refs)))
            if kind == "conv":
                self._conv(step, t, rng, gen)
            elif kind == "bn":
                self._bn(step, t, rng, gen)
            else:
                others = [
                    u for u in range(len(self.refs))
                    if u != t and not set(self.refs[u]) & set(self.refs[t])
                    and (kind == "cat" or len(self.refs[u]) == len(self.refs[t]))
                ]
                if not others:
                    self._conv(step, t, rng, gen)
                elif kind == "add":
                    self._add(t, int(rng.choice(others)))
                else:
                    u = int(rng.choice(others))
                    self.plan.append(("cat", t, u))
                    self.refs.append(self.refs[t] + self.refs[u])
        self.out = len(self.refs) - 1

    def _conv(self, step: int, t: int, rng: np.random.Generator, gen: torch.Generator) -> None:
        c_in = len(self.refs[t])
        c_out = int(rng.integers(1, 5))
        divisors = [g for g in range(1, math.gcd(c_in, c_out) + 1) if c_in % g == 0 and c_out % g == 0]
        groups = int(rng.choice(divisors))
        k = int(rng.choice([1, 3]))
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=bool(rng.random() < 0.5))
        with torch.no_grad():
            w = torch.randn(conv.weight.shape, generator=gen)
            w[torch.rand(w.shape[:2], generator=gen) < 0.3] = 0  # whole kernel slices: missing edges
            w[torch.rand(w.shape, generator=gen) < 0.1] = 0  # single elements: lighter edges
            if rng.random() < 0.2:
                w[int(rng.integers(c_out))] = 0  # a whole unit without inputs
            conv.weight.copy_(w)
        name = f"conv{step}"
        self.layers[name] = conv
        self.plan.append(("conv", name, t))
        out = [f"{name}:{o}" for o in range(c_out)]
        ipg, opg = c_in // groups, c_out // groups
        self.n_edges += c_out * ipg
        wd = conv.weight.detach().double()
        for o in range(c_out):
            g = o // opg
            self.ref.add_node(out[o])
            for j in range(ipg):
                weight = float(wd[o, j].abs().sum())
                if weight > 0:
                    self.ref.add_edge(self.refs[t][g * ipg + j], out[o], weight=weight)
        self.refs.append(out)

    def _bn(self, step: int, t: int, rng: np.random.Generator, gen: torch.Generator) -> None:
        c = len(self.refs[t])
        bn = nn.BatchNorm2d(c)
        with torch.no_grad():
            bn.weight.copy_(torch.randn(c, generator=gen) * (torch.rand(c, generator=gen) > 0.25))
            bn.bias.copy_(torch.randn(c, generator=gen))
            bn.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.1)
            bn.running_mean.copy_(torch.randn(c, generator=gen))
        name = f"bn{step}"
        self.layers[name] = bn
        self.plan.append(("bn", name, t))
        out = [f"{name}:{i}" for i in range(c)]
        gain = bn.weight.detach().double().abs() / torch.sqrt(bn.running_var.double() + bn.eps)
        self.n_edges += c
        for i in range(c):
            self.ref.add_node(out[i])
            if gain[i] > 0:
                self.ref.add_edge(self.refs[t][i], out[i], weight=float(gain[i]))
        self.refs.append(out)

    def _add(self, t: int, u: int) -> None:
        self.plan.append(("add", t, u))
        self.n_edges += 2 * len(self.refs[t])
        out = [f"add{len(self.adds)}:{i}" for i in range(len(self.refs[t]))]
        for i, node in enumerate(out):
            self.ref.add_edge(self.refs[t][i], node, weight=1.0)
            self.ref.add_edge(self.refs[u][i], node, weight=1.0)
        self.adds.append((len(self.refs), out))
        self.refs.append(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for op in self.plan:
            if op[0] == "conv":
                values.append(torch.relu(self.layers[op[1]](values[op[2]])))
            elif op[0] == "bn":
                values.append(self.layers[op[1]](values[op[2]]))
            elif op[0] == "add":
                values.append(values[op[1]] + values[op[2]])
            else:
                values.append(torch.cat([values[op[1]], values[op[2]]], 1))
        return values[self.out]


def node_mapping(dag: RandomDag, graph) -> dict[str, int]:
    """Reference node -> channel-graph node, from block names (and join pairs for adds)."""
    mapping = {f"in{c}": int(n) for c, n in enumerate(graph.input_nodes)}
    by_name = {b.name: b for b in graph.blocks if b.kind != "struct"}
    joins = [b for b in graph.blocks if b.kind == "struct"]
    assert len(joins) == len(dag.adds)
    for name, layer in dag.layers.items():
        for i, node in enumerate(by_name[f"layers.{name}"].dst.nodes):
            mapping[f"{name}:{i}"] = int(node)
    for (t, out), block in zip(dag.adds, joins):
        op = dag.plan[t - 1]
        pairs = block.in_node.reshape(-1, 2)
        pair_node = {(int(a), int(b)): int(n) for (a, b), n in zip(pairs, block.dst.nodes)}
        for i, node in enumerate(out):
            a, b = mapping[dag.refs[op[1]][i]], mapping[dag.refs[op[2]][i]]
            mapping[node] = pair_node[(a, b)]
    return mapping


def enumerate_paths(dag: RandomDag) -> tuple[float, dict[str, float], dict[tuple[str, str], float]]:
    """phi, path mass per node and per edge, by listing every input->output path."""
    outputs = set(dag.refs[dag.out])
    phi = 0.0
    node_mass: dict[str, float] = {}
    edge_mass: dict[tuple[str, str], float] = {}
    g = dag.ref
    for source in dag.refs[0]:
        if source in outputs:  # the output is the input itself
            phi += 1.0
            node_mass[source] = node_mass.get(source, 0.0) + 1.0
        if source not in g:
            continue
        for path in nx.all_simple_paths(g, source, outputs - {source}):
            product = math.prod(g.edges[u, v]["weight"] for u, v in zip(path, path[1:]))
            phi += product
            for node in path:
                node_mass[node] = node_mass.get(node, 0.0) + product
            for edge in zip(path, path[1:]):
                edge_mass[edge] = edge_mass.get(edge, 0.0) + product
    return phi, node_mass, edge_mass


@pytest.mark.parametrize("seed", range(40))
def test_random_dag_matches_path_enumeration(seed: int) -> None:
    dag = RandomDag(seed).eval()
    graph = trace(dag, input_shape=(dag.c_in, 3, 3))
    mapping = node_mapping(dag, graph)
    # The mapping is a bijection onto the channel graph's nodes.
    assert sorted(mapping.values()) == list(range(graph.n_nodes))
    assert sorted(graph.output_nodes) == sorted(mapping[r] for r in set(dag.refs[dag.out]))

    # Same weighted edges (scipy matrices of every block vs. the hand-built DAG).
    built = {}
    for block in graph.blocks:
        coo = block.matrix().tocoo()
        for row, col, value in zip(coo.row, coo.col, coo.data):
            if value > 0:
                built[(int(block.src[col]), int(block.dst.nodes[row]))] = float(value)
    expected = {(mapping[u], mapping[v]): w for u, v, w in dag.ref.edges(data="weight")}
    assert built.keys() == expected.keys()
    assert graph.n_edges() == dag.n_edges
    for edge, weight in expected.items():
        assert built[edge] == pytest.approx(weight, rel=1e-5)

    phi, node_mass, edge_mass = enumerate_paths(dag)
    result = flows(graph)
    if phi == 0:
        assert result.log_phi == -math.inf and result.disconnected
        assert log_phi_from_inputs(result) == -math.inf
    else:
        assert result.log_phi == pytest.approx(math.log(phi), rel=1e-5, abs=1e-6)
        assert log_phi_from_inputs(result) == pytest.approx(result.log_phi, rel=1e-9, abs=1e-9)
        assert not result.disconnected
        centrality = result.centrality()
        for ref, node in mapping.items():
            assert centrality[node] == pytest.approx(node_mass.get(ref, 0.0) / phi, rel=1e-4, abs=1e-9)

    alive = {mapping[r] for r in node_mass}
    assert set(np.flatnonzero(result.alive)) == alive

    # Per-layer alive weights: nonzero elements whose edge lies on some path.
    report = analyze(graph, result)
    layers = {layer.name: layer for layer in report.layers}
    masks = alive_weight_masks(graph, result)
    for name, layer in dag.layers.items():
        if not isinstance(layer, nn.Conv2d):
            continue
        t = next(op[2] for op in dag.plan if op[:2] == ("conv", name))
        w = layer.weight.detach()
        ipg, opg = w.shape[1], w.shape[0] // layer.groups
        want = torch.zeros(w.shape, dtype=torch.bool)
        for o in range(w.shape[0]):
            for j in range(ipg):
                edge = (dag.refs[t][(o // opg) * ipg + j], f"{name}:{o}")
                want[o, j] = (w[o, j] != 0) & (edge in edge_mass)
        key = f"layers.{name}.weight"
        assert torch.equal(masks[key], want), key
        nonzero = int((w != 0).sum())
        assert (layers[key].nonzero, layers[key].alive, layers[key].dead) == (
            nonzero, int(want.sum()), nonzero - int(want.sum())
        )
        assert layers[key].cut == (not want.any())
        # Path mass per edge (SynFlow score at channel granularity).
        if phi > 0:
            block = next(b for b in graph.blocks if b.name == f"layers.{name}")
            mass = result.edge_path_mass(block)
            for o in range(w.shape[0]):
                for j in range(ipg):
                    edge = (dag.refs[t][(o // opg) * ipg + j], f"{name}:{o}")
                    assert mass[o, j] == pytest.approx(edge_mass.get(edge, 0.0) / phi, rel=1e-4, abs=1e-9)
    assert report.disconnected == (phi == 0)
    assert report.dead == sum(layer.dead for layer in report.layers)


def test_random_dags_cover_the_interesting_cases() -> None:
    """The seeds above include grouped convs, adds, concats, dead units and disconnection."""
    seen = set()
    for seed in range(40):
        dag = RandomDag(seed)
        seen |= {op[0] for op in dag.plan}
        seen |= {"grouped" for m in dag.layers.values() if isinstance(m, nn.Conv2d) and m.groups > 1}
        phi, node_mass, _ = enumerate_paths(dag)
        seen.add("disconnected" if phi == 0 else "connected")
        if len(node_mass) < dag.ref.number_of_nodes() + dag.c_in and phi > 0:
            seen.add("dead nodes")
    assert seen >= {"conv", "bn", "add", "cat", "grouped", "connected", "disconnected", "dead nodes"}


@pytest.mark.parametrize("normalize", [False, True])
def test_edge_shares_of_some_edges_are_those_of_all_bit_for_bit(normalize: bool) -> None:
    """``edge_share(block, result, edges)`` (the CoNNect loop's edges that still hold
    weights) gives exactly ``edge_share(block, result)[edges]``: grouped convs, BN, joins."""
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(12):
        dag = RandomDag(seed).eval()
        graph = trace(dag, input_shape=(dag.c_in, 3, 3))
        result = flows(graph, normalize=normalize, balance_joins=normalize)
        for block in graph.blocks:
            if block.kind != "param":
                continue
            full = edge_share(block, result)
            chosen = rng.random(full.shape) < 0.5
            edges = np.nonzero(chosen)
            some = edge_share(block, result, edges)
            assert some.shape == (int(chosen.sum()),)
            assert np.array_equal(some.view(np.int64), full[edges].view(np.int64))
            checked += block.groups > 1
    assert checked > 0  # grouped convs among them


def test_the_l1_edge_weights_of_magnitudes_need_no_abs() -> None:
    """``nonnegative=True`` (a pruning loop's ``|w|``) sums to the edge weights of ``w``, bit for bit."""
    weight = torch.randn(16, 8, 3, 3)
    assert torch.equal(aggregate_slices(weight.abs(), "l1", nonnegative=True), aggregate_slices(weight, "l1"))


# ---------------------------------------------------------------- MLPs and deep chains


@pytest.mark.parametrize("sizes", [[5, 3], [7, 6, 2], [4, 9, 9, 3, 1], [10, 2, 8, 5]])
def test_mlp_phi_is_synflow_product(sizes: list[int]) -> None:
    torch.manual_seed(len(sizes))
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    with torch.no_grad():
        model[0].weight[0, :] = 0  # a sparse layer changes nothing in the formula
    result = flows(trace(model, input_shape=(sizes[0],)))
    vector = torch.ones(sizes[0], dtype=torch.float64)
    for layer in model:
        if isinstance(layer, nn.Linear):
            vector = layer.weight.detach().double().abs() @ vector
    assert math.exp(result.log_phi) == pytest.approx(float(vector.sum()), rel=1e-12)
    assert log_phi_from_inputs(result) == pytest.approx(result.log_phi, rel=1e-12)
    # Forward flows are the partial products.
    assert np.exp(result.log_forward[result.graph.output_nodes]) == pytest.approx(vector.numpy(), rel=1e-12)


@pytest.mark.parametrize("c", [10.0, 0.1])
def test_thousand_layer_chain_has_exact_finite_log_phi(c: float) -> None:
    depth, n = 1000, 4
    model = nn.Sequential(*[nn.Linear(n, n, bias=False) for _ in range(depth)])
    for layer in model:
        nn.init.constant_(layer.weight, c)
    result = flows(trace(model, input_shape=(n,)))
    # F after L layers is (n c)^L on every unit; phi sums n of them (c as stored in float32).
    c = float(torch.tensor(c, dtype=torch.float32))
    expected = math.log(n) + depth * math.log(n * c)
    assert abs(expected) > 700  # exp() of it over/underflows float64
    assert math.isfinite(result.log_phi)
    assert result.log_phi == pytest.approx(expected, rel=1e-12)
    assert log_phi_from_inputs(result) == pytest.approx(expected, rel=1e-12)
    # Every layer carries all the path mass of a chain.
    shares = [float(result.centrality()[b.dst.nodes].sum()) for b in result.graph.blocks]
    assert shares == pytest.approx([1.0] * depth, rel=1e-9)


def test_thousand_layer_random_chain_matches_log_domain_product() -> None:
    torch.manual_seed(0)
    depth, n = 1000, 4
    model = nn.Sequential(*[nn.Linear(n, n, bias=False) for _ in range(depth)])
    with torch.no_grad():
        for i, layer in enumerate(model):
            layer.weight.mul_(10.0 if i % 2 else 0.1 * (1 + i / depth))
    result = flows(trace(model, input_shape=(n,)))
    vector, log_scale = np.ones(n), 0.0
    for layer in model:
        vector = np.abs(layer.weight.detach().double().numpy()) @ vector
        log_scale += math.log(vector.max())
        vector /= vector.max()
    expected = log_scale + math.log(vector.sum())
    assert math.isfinite(result.log_phi)
    assert result.log_phi == pytest.approx(expected, rel=1e-10)
    assert log_phi_from_inputs(result) == pytest.approx(expected, rel=1e-10)


class TwoScales(nn.Module):
    """Two 30-layer branches joined by an add: one ~1e600, one ~1e-600."""

    def __init__(self, big: float, small: float) -> None:
        super().__init__()
        self.big = nn.Sequential(*[nn.Linear(2, 2, bias=False) for _ in range(30)])
        self.small = nn.Sequential(*[nn.Linear(2, 2, bias=False) for _ in range(30)])
        for layer in self.big:
            nn.init.constant_(layer.weight, big)
        for layer in self.small:
            nn.init.constant_(layer.weight, small)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.big(x) + self.small(x)


def test_each_group_keeps_its_own_scale() -> None:
    big, small = (float(torch.tensor(v, dtype=torch.float32)) for v in (1e20, 1e-20))
    graph = trace(TwoScales(big, small), input_shape=(2,))
    result = flows(graph)
    log_big, log_small = 30 * math.log(2 * big), 30 * math.log(2 * small)
    expected = math.log(2) + np.logaddexp(log_big, log_small)
    assert result.log_phi == pytest.approx(expected, rel=1e-12)
    assert log_phi_from_inputs(result) == pytest.approx(expected, rel=1e-12)
    # The negligible branch is still exact: per-group scales, not one global scale.
    last_small = next(b for b in graph.blocks if b.name == "small.29").dst.nodes
    first_small = next(b for b in graph.blocks if b.name == "small.0").dst.nodes
    assert result.log_forward[last_small] == pytest.approx([log_small] * 2, rel=1e-12)
    assert result.log_backward[first_small] == pytest.approx([29 * math.log(2 * small)] * 2, rel=1e-12)
    assert np.isfinite(result.centrality()).all()
    assert result.alive.all()


# ---------------------------------------------------------------- flows on a hand-built net


def test_flows_of_a_tiny_net_by_hand() -> None:
    """x (2 channels) -> Linear 2->2 with W = [[1, 2], [0, 3]] -> output: F and B by hand."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
    result = flows(trace(model, input_shape=(2,)))
    graph = result.graph
    out = graph.output_nodes
    assert np.exp(result.log_forward[out]) == pytest.approx([3.0, 3.0])
    assert np.exp(result.log_backward[graph.input_nodes]) == pytest.approx([1.0, 5.0])
    assert math.exp(result.log_phi) == pytest.approx(6.0)
    assert result.edge_path_mass(graph.blocks[0]) == pytest.approx(np.array([[1, 2], [0, 3]]) / 6.0)
    assert result.centrality()[graph.input_nodes] == pytest.approx([1 / 6, 5 / 6])


@pytest.mark.parametrize("dense_dtype", [torch.float32, torch.float64])
def test_dense_products_in_row_blocks_give_the_whole_matrix_products(monkeypatch, dense_dtype) -> None:
    """Matrices above the conversion bound are multiplied a block of rows at a time (the
    transposed product summing the blocks): flows within float rounding of one product,
    reachability exactly equal, on a pruned LeNet-300 whose zeros exercise the support path."""
    import netgraph as ng
    import netgraph.connectivity.propagate as propagate

    model = ng.build_model("lenet300")
    ng.prune(model, "magnitude", compression=300, input_shape=(1, 28, 28))
    graph = trace(model, input_shape=(1, 28, 28))
    whole = flows(graph, dense_dtype=dense_dtype)
    monkeypatch.setattr(propagate, "_ROWS_AT_ONCE", 1000)  # 1 row of 784 inputs, 3 rows of 300 per block
    blocks = flows(graph, dense_dtype=dense_dtype)
    assert np.array_equal(blocks.reached, whole.reached) and np.array_equal(blocks.reaches_output, whole.reaches_output)
    assert math.isclose(blocks.log_phi, whole.log_phi, rel_tol=1e-6)
    for ours, reference in ((blocks.log_forward, whole.log_forward), (blocks.log_backward, whole.log_backward)):
        finite = np.isfinite(reference)
        assert np.array_equal(np.isfinite(ours), finite)
        np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-5, atol=1e-6)
