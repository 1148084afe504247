"""Figures (netgraph.plots) and graph export (netgraph.connectivity.export): files are written,
HTML holds a plotly figure, and the surviving-path drawing draws exactly the
alive edges of the analysis."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch

from netgraph.connectivity.export import alive_edge_count as export_alive_edge_count
from netgraph.connectivity.export import to_networkx, write_graphml
from netgraph.connectivity.propagate import flows
from netgraph.connectivity.report import alive_edges, alive_weight_masks, analyze
from netgraph.graph.tracer import trace
from netgraph.plots import (
    accuracy_vs_compression,
    alive_edge_count,
    effective_vs_nominal,
    layer_density_heatmap,
    log_phi_vs_compression,
    method_color,
    method_marker,
    plot_model,
    surviving_path_stats,
    surviving_paths,
)
from netgraph.training.models import build_model

# --- models at several sparsity levels ------------------------------------------------


def _prune_random(model: torch.nn.Module, compression: float, seed: int = 0) -> None:
    """Zero weights at random so that about 1/compression of each weight tensor remains."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                keep = torch.rand(module.weight.shape, generator=gen) < 1.0 / compression
                module.weight.mul_(keep)


def _mlp_level(level: str):
    """A LeNet-300-100 on a flat 784 input (one node per feature, so one edge per weight)."""
    torch.manual_seed(0)
    model = build_model("lenet300", input_shape=(784,))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if level == "10^1.5":
        _prune_random(model, 10**1.5)
    elif level == "10^2":
        _prune_random(model, 10**2, seed=1)
    elif level == "cut":
        # the middle layer keeps weights, but only from hidden units nothing feeds: cut, not collapsed
        _prune_random(model, 10**2, seed=2)
        with torch.no_grad():
            linears[0].weight[:20] = 0.0
            linears[1].weight[:, 20:] = 0.0
            linears[1].weight[:, :20] = 1.0
    graph = trace(model, input_shape=(784,))
    return graph, flows(graph)


@pytest.fixture(scope="module")
def mlp_snapshots():
    return [(label, *_mlp_level(label)) for label in ("10^1.5", "10^2", "cut")]


@pytest.fixture(scope="module")
def cnn_snapshots():
    snaps = []
    for exponent in (1.0, 2.0):
        torch.manual_seed(0)
        model = build_model("smallcnn")
        _prune_random(model, 10**exponent, seed=int(exponent))
        graph = trace(model, input_shape=(1, 28, 28))
        snaps.append((f"10^{exponent:g} ×", graph, flows(graph)))
    return snaps


def _independent_mlp_count(graph, result) -> int:
    """Alive (out, in) weight pairs of a pure MLP (report.alive_weight_masks)."""
    assert all(block.kind == "param" for block in graph.blocks)
    return int(sum(mask.sum() for mask in alive_weight_masks(graph, result).values()))


def _grouped_alive_count(graph, result) -> int:
    """Alive grouped-form edges with a nonzero slice, over every block (report.alive_edges)."""
    total = 0
    for block in graph.blocks:
        nonzero = block.source.grouped("count").cpu().numpy() > 0
        total += int((alive_edges(block, result).numpy() & nonzero).sum())
    return total


def _check_files(paths, suffixes=(".png", ".html")) -> None:
    found = {p.suffix for p in paths}
    assert set(suffixes) <= found, (suffixes, paths)
    for path in paths:
        assert path.exists() and path.stat().st_size > 0, path
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if path.suffix == ".html":
            text = path.read_text()
            assert "Plotly.newPlot" in text
            assert "cdn.plot.ly" not in text  # offline: never the CDN
            assert (path.parent / "plotly.min.js").stat().st_size > 1_000_000


# --- the edge count of the surviving-path figure -------------------------------------


def test_alive_edge_count_equals_weight_masks_for_mlp(mlp_snapshots):
    counts = []
    for _, graph, result in mlp_snapshots:
        count = alive_edge_count(graph, result)
        assert count == _independent_mlp_count(graph, result)
        assert count == export_alive_edge_count(graph, result)
        counts.append(count)
    assert counts[0] > counts[1] > 0 and counts[2] == 0


def test_levels_cover_dead_weights_and_a_cut_layer(mlp_snapshots):
    reports = [analyze(graph, result) for _, graph, result in mlp_snapshots]
    assert all(report.dead > 0 for report in reports)
    cut = reports[2]
    assert cut.disconnected and "1.weight" in cut.cut_layers and "1.weight" not in cut.collapsed_layers


def test_surviving_paths_mlp_draws_every_alive_edge(mlp_snapshots, tmp_path):
    written = surviving_paths(mlp_snapshots, tmp_path, "mlp", max_exact=None)
    _check_files(written)
    stats = surviving_path_stats(written)
    assert [s.label for s in stats] == ["10^1.5", "10^2", "cut"]
    for stat, (_, graph, result) in zip(stats, mlp_snapshots):
        expected = alive_edge_count(graph, result)
        assert stat.exact
        assert stat.edges_drawn == stat.edges_drawn_html == stat.alive_edges == expected
        assert stat.edges_drawn == _independent_mlp_count(graph, result)
    assert written.info["edges_drawn"] == [s.edges_drawn for s in stats]
    assert stats[2].disconnected and stats[2].cut_layers and stats[2].dead_edges_drawn > 0
    assert not math.isfinite(stats[2].log_phi)


def test_surviving_paths_cnn_is_exact_below_the_threshold(cnn_snapshots, tmp_path):
    written = surviving_paths(cnn_snapshots, tmp_path, "cnn", formats=("png", "svg"))
    _check_files(written, (".png", ".svg", ".html"))
    assert "<svg" in written.by_suffix(".svg")[0].read_text()[:500]
    for stat, (_, graph, result) in zip(surviving_path_stats(written), cnn_snapshots):
        assert any(block.kind == "diag" for block in graph.blocks)
        expected = alive_edge_count(graph, result)
        assert stat.exact and 0 < expected <= 3000
        assert stat.edges_drawn == stat.edges_drawn_html == expected == _grouped_alive_count(graph, result)


def test_surviving_paths_aggregates_big_panels(cnn_snapshots, tmp_path):
    label, graph, result = cnn_snapshots[0]
    written = surviving_paths([(label, graph, result)], tmp_path, "agg", max_exact=100, top_k=5)
    (stat,) = surviving_path_stats(written)
    assert not stat.exact and stat.top_k == 5
    assert stat.alive_edges == alive_edge_count(graph, result) > 100
    per_block = [int(np.count_nonzero(_alive_in_block(b, result))) for b in graph.blocks]
    assert stat.edges_drawn == stat.edges_drawn_html == sum(min(5, n) for n in per_block)
    assert "top 5" in (tmp_path / "agg.html").read_text()  # "/" is escaped in the JSON


def _alive_in_block(block, result):
    coo = block.matrix().tocoo()
    keep = coo.data != 0
    src, dst = block.src[coo.col[keep]], block.dst.offset + coo.row[keep]
    return result.alive[src] & result.alive[dst]


def test_plotly_js_can_be_embedded(cnn_snapshots, tmp_path):
    written = surviving_paths(cnn_snapshots[:1], tmp_path, "embedded", plotlyjs=True)
    html = written.by_suffix(".html")[0]
    assert html.stat().st_size > 1_000_000 and not (tmp_path / "plotly.min.js").exists()
    with pytest.raises(ValueError):
        surviving_paths(cnn_snapshots[:1], tmp_path, "cdn", plotlyjs="cdn")


def test_plot_model(mlp_snapshots, cnn_snapshots, tmp_path):
    for label, graph, result in (mlp_snapshots[2], cnn_snapshots[1]):
        report = analyze(graph, result)
        written = plot_model(graph, result, report, tmp_path, f"model_{len(graph.blocks)}")
        _check_files(written)
        assert len(written.by_suffix(".png")) == 2 and len(written.by_suffix(".html")) == 2
        assert written.info["paths"]["edges_drawn"] == [alive_edge_count(graph, result)]
    # the report is optional
    _check_files(plot_model(graph, result, None, tmp_path, "no_report"))


# --- comparison figures ---------------------------------------------------------------


def _records():
    rows = []
    layers = ["1.weight", "3.weight", "5.weight"]
    for protocol in ("init", "post"):
        for method, collapse_at in (("synflow", 99.0), ("random", 2.0), ("magnitude", 2.5), ("my_method", 99.0)):
            for seed in range(2):
                for exponent in (0.5, 1.0, 1.5, 2.0, 2.5):
                    tc = 10**exponent
                    disconnected = exponent >= collapse_at
                    rows.append({
                        "method": method, "protocol": protocol, "target_compression": tc,
                        "nominal_compression": tc, "seed": seed,
                        "effective_compression": None if disconnected else tc * (1 + 0.1 * exponent),
                        "accuracy_before_finetune": 0.9 - 0.1 * exponent,
                        "accuracy_after_finetune": 0.1 if disconnected else 0.98 - 0.05 * exponent + 0.01 * seed,
                        "dense_accuracy": 0.985,
                        "log_phi": None if disconnected else float("nan") if seed and exponent == 1.0
                        else 20 - 5 * exponent,
                        "dead": 10, "disconnected": disconnected,
                        "collapsed_layers": ["5.weight"] if disconnected and method == "random" else [],
                        "cut_layers": ["5.weight"] if disconnected else [],
                        "parameters": int(266_200 / tc), "flops": 0,
                        "layers": {name: {"density": 1 / tc, "alive_density": 0.0 if disconnected else 0.9 / tc}
                                   for name in layers},
                    })
    return rows


def test_comparison_figures_handle_missing_and_disconnected(tmp_path):
    records = _records()
    records.append({"method": "synflow", "protocol": "init", "target_compression": 10.0})  # a bare row
    for figure in (accuracy_vs_compression, effective_vs_nominal, log_phi_vs_compression):
        written = figure(records, tmp_path)
        _check_files(written)
    _check_files(accuracy_vs_compression(records, tmp_path, "acc_both", accuracy="both"))
    heatmaps = layer_density_heatmap(records, tmp_path)
    _check_files(heatmaps)
    assert {p.stem for p in heatmaps} == {"layer_density_init", "layer_density_post"}
    single = layer_density_heatmap(records, tmp_path, "dens", protocol="post", density="density", methods=["random"])
    assert {p.name for p in single} == {"dens.png", "dens.html"}


def test_comparison_figures_accept_empty_records(tmp_path):
    for figure in (accuracy_vs_compression, effective_vs_nominal, log_phi_vs_compression, layer_density_heatmap):
        _check_files(figure([], tmp_path / figure.__name__))


def test_method_colours_are_fixed_and_distinct():
    known = ["connect", "magnitude+connect", "synflow", "magnitude", "magnitude_layerwise", "magnitude+l1",
             "imp", "snip", "grasp", "random"]
    colours = [method_color(m) for m in known]
    assert len(set(colours)) == len(known)
    assert len({method_marker(m) for m in known}) == len(known)
    assert method_color("synflow_iterative") == method_color("synflow")
    assert method_color("SynFlow") == method_color("synflow")
    assert method_color("some_new_method") == method_color("some_new_method")


# --- export ---------------------------------------------------------------------------


def test_to_networkx_and_graphml(cnn_snapshots, tmp_path):
    _, graph, result = cnn_snapshots[0]
    digraph = to_networkx(graph, result)
    assert digraph.number_of_nodes() == graph.n_nodes
    assert digraph.number_of_edges() == sum(block.matrix().count_nonzero() for block in graph.blocks)
    alive = to_networkx(graph, result, alive_only=True)
    assert alive.number_of_edges() == alive_edge_count(graph, result)
    assert alive.number_of_nodes() == int(result.alive.sum())
    node = next(iter(alive.nodes(data=True)))[1]
    assert {"group", "layer", "index", "alive", "centrality"} <= set(node)
    u, v, edge = next(iter(alive.edges(data=True)))
    assert edge["alive"] and edge["weight"] > 0 and edge["path_mass"] > 0 and edge["layer"]
    # path masses of one chain block sum to the share of phi crossing it (1 for a chain)
    first = graph.blocks[0].name
    total = sum(d["path_mass"] for _, _, d in alive.edges(data=True) if d["layer"] == first)
    assert total == pytest.approx(1.0, rel=1e-6)
    path = write_graphml(graph, tmp_path / "g.graphml", result)
    back = nx.read_graphml(path)
    assert back.number_of_nodes() == graph.n_nodes and back.number_of_edges() == digraph.number_of_edges()
