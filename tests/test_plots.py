"""Figures (netgraph.plots) and graph export (netgraph.connectivity.export).

Each figure's content is tested on its backend-neutral description (FigureSpec):
which series, axis labels, markers, which points are marked collapsed or
disconnected, which edges are drawn (against independent counts); the files are
checked once per writer."""

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
    FigureSpec,
    accuracy_spec,
    accuracy_vs_compression,
    alive_edge_count,
    choose_view,
    density_specs,
    effective_spec,
    effective_vs_nominal,
    input_pixels,
    layer_bars_spec,
    layer_density_heatmap,
    layer_view_spec,
    log_phi_spec,
    log_phi_vs_compression,
    method_color,
    method_marker,
    paths_spec,
    plot_model,
    surviving_path_stats,
    surviving_paths,
)
from netgraph.plots.spec import HLine, Line, Points, Segments, Span
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
            assert "Plotly.newPlot" in text and "cdn.plot.ly" not in text
            assert (path.parent / "plotly.min.js").stat().st_size > 1_000_000


def _html(path) -> str:
    """An HTML figure's text with plotly's JSON escapes (\\u00b7, \\u002f) decoded."""
    return path.read_text().encode().decode("unicode_escape")


def _segments(spec: FigureSpec, panel: int, role: str) -> int:
    return sum(len(m) for m in spec.panels[panel].find(Segments, role))


# --- the edges of the surviving-path figure -------------------------------------------


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


def test_paths_spec_draws_every_edge_of_an_mlp(mlp_snapshots):
    spec = paths_spec(mlp_snapshots, max_edges=None, title="t")
    stats = surviving_path_stats(spec)
    assert [s.label for s in stats] == [p.title for p in spec.panels] == ["10^1.5", "10^2", "cut"]
    for i, (stat, (_, graph, result)) in enumerate(zip(stats, mlp_snapshots)):
        report = analyze(graph, result)
        alive = _independent_mlp_count(graph, result)
        nonzero = sum(int((b.source.parameter() != 0).sum()) for b in graph.param_blocks())
        assert stat.exact and stat.edges_drawn == stat.alive_edges == alive == _segments(spec, i, "alive")
        assert stat.dead_edges_drawn == stat.dead_edges == nonzero - alive == _segments(spec, i, "dead") > 0
        assert report.dead == stat.dead_edges  # an MLP on a flat input: one edge per weight
        assert f"every edge drawn:\n{alive:,} alive · {nonzero - alive:,} dead" in spec.panels[i].subtitle
        # channels: alive ones filled, dead ones hollow, as many as the analysis says
        (alive_nodes,) = spec.panels[i].find(Points, "alive nodes") or [Points(np.zeros(0), np.zeros(0))]
        assert len(alive_nodes) == int(result.alive.sum())
    # the cut panel: disconnected, a band on layer 1's column, labelled
    assert stats[2].disconnected and not math.isfinite(stats[2].log_phi)
    bands = {band.name: band.text for band in spec.panels[2].find(Span)}
    assert bands["1"] == "cut" and sorted(bands) == sorted(name.split(".")[0] for name in stats[2].cut_layers)
    assert "disconnected" in spec.panels[2].subtitle
    # ticks carry layer names and widths
    assert spec.panels[0].xticks[1] == ["input (784)", "1 (300)", "3 (100)", "5 (10)"]


def test_paths_spec_samples_alive_and_dead_edges_by_one_rule():
    """Above the limit each edge is drawn with one probability, alive or dead, so the
    drawn alive:dead ratio estimates the true one (the old top-30-alive rule drew a
    10x net as mostly dead)."""
    torch.manual_seed(0)
    model = build_model("lenet300", input_shape=(784,))
    _prune_random(model, 4.0)
    with torch.no_grad():
        model[5].weight[:, :50] = 0.0  # half the last hidden layer reaches no output: its inputs are dead
    graph = trace(model, input_shape=(784,))
    result = flows(graph)
    spec = paths_spec([("4x", graph, result)], max_edges=5000)
    (stat,) = surviving_path_stats(spec)
    total = stat.alive_edges + stat.dead_edges
    assert stat.alive_edges == _independent_mlp_count(graph, result) and stat.dead_edges > 2000
    assert stat.rate == pytest.approx(5000 / total)
    for drawn, n in ((stat.edges_drawn, stat.alive_edges), (stat.dead_edges_drawn, stat.dead_edges)):
        assert abs(drawn - stat.rate * n) < 5 * math.sqrt(stat.rate * n)  # binomial, 5 sigma
    assert _segments(spec, 0, "alive") == stat.edges_drawn and _segments(spec, 0, "dead") == stat.dead_edges_drawn
    assert spec.panels[0].subtitle.startswith(f"1 in {1 / stat.rate:,.0f} edges drawn, alive and dead alike:\n"
                                              f"{stat.edges_drawn:,}/{stat.alive_edges:,} alive · "
                                              f"{stat.dead_edges_drawn:,}/{stat.dead_edges:,} dead")


def test_paths_spec_cnn_counts_grouped_edges(cnn_snapshots):
    spec = paths_spec(cnn_snapshots)
    for i, (stat, (_, graph, result)) in enumerate(zip(surviving_path_stats(spec), cnn_snapshots)):
        assert any(block.kind == "diag" for block in graph.blocks)
        assert stat.exact and stat.edges_drawn == alive_edge_count(graph, result) == _grouped_alive_count(graph, result)
        assert _segments(spec, i, "alive") == stat.edges_drawn


def test_surviving_paths_writes_png_svg_html_and_one_plotlyjs(cnn_snapshots, tmp_path):
    written = surviving_paths(cnn_snapshots, tmp_path, "cnn", title="SmallCNN paths", formats=("png", "svg"))
    _check_files(written, (".png", ".svg", ".html"))
    assert "<svg" in written.by_suffix(".svg")[0].read_text()[:500]
    html = _html(written.by_suffix(".html")[0])
    assert "SmallCNN paths" in html and "every edge drawn" in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.html", "cnn.png", "cnn.svg", "plotly.min.js"]


def test_plotlyjs_once_per_tree_cdn_or_embedded(cnn_snapshots, tmp_path):
    shared = tmp_path / "plotly.min.js"
    for folder in ("a", "b/c"):
        surviving_paths(cnn_snapshots[:1], tmp_path / folder, "p", plotlyjs=shared)
    assert sorted(p.name for p in tmp_path.rglob("*.js")) == ["plotly.min.js"] and shared.stat().st_size > 1_000_000
    assert 'src="../plotly.min.js"' in (tmp_path / "a" / "p.html").read_text()
    assert 'src="../../plotly.min.js"' in (tmp_path / "b" / "c" / "p.html").read_text()
    cdn = surviving_paths(cnn_snapshots[:1], tmp_path / "cdn", "p", plotlyjs="cdn").by_suffix(".html")[0]
    assert "cdn.plot.ly" in cdn.read_text() and cdn.stat().st_size < 1_000_000
    assert not (tmp_path / "cdn" / "plotly.min.js").exists()
    embedded = surviving_paths(cnn_snapshots[:1], tmp_path / "e", "p", plotlyjs="embed").by_suffix(".html")[0]
    assert embedded.stat().st_size > 1_000_000 and not (tmp_path / "e" / "plotly.min.js").exists()
    with pytest.raises(ValueError, match="plotlyjs"):
        surviving_paths(cnn_snapshots[:1], tmp_path, "x", plotlyjs="internet")


# --- one model: layer dots, layer view, input pixels -----------------------------------


def test_layer_bars_spec_dots_on_a_log_axis_fit_the_data(mlp_snapshots):
    _, graph, result = mlp_snapshots[2]  # layer 1 cut
    report = analyze(graph, result)
    spec = layer_bars_spec(report, title="t")
    (panel,) = spec.panels
    assert panel.xlog and not panel.find(kind=None, role="stacked")
    alive = panel.find(Line, "alive")[0]
    nonzero = panel.find(Line, "nonzero")[0]
    expected = [layer.alive / layer.parameters for layer in report.layers]
    shares = np.array(alive.x, float)
    assert np.allclose(np.nan_to_num(shares), expected) and np.isnan(shares[np.array(expected) == 0]).all()
    assert np.allclose(nonzero.x, [layer.nonzero / layer.parameters for layer in report.layers])
    positive = [v for v in expected + list(nonzero.x) if v > 0]
    assert panel.xlim[0] < min(positive) and panel.xlim[0] > min(positive) / 10 and 1.0 < panel.xlim[1] < 2.0
    zero = panel.find(Line, "zero")[0]  # the zero shares, at the left edge
    assert list(zero.y) == [i for i, v in enumerate(expected) if v == 0] and zero.marker == "X"
    assert {m.text.split(":")[0] for m in panel.find(role="cut")} == {"cut"}
    colours = {e.label: e.color for e in spec.legend}
    assert colours["nonzero share"] == nonzero.color and colours["alive share (on an input→output path)"] == alive.color
    assert colours["no alive weight (cut / collapsed)"] == zero.color


def test_layer_view_aggregates_by_group(cnn_snapshots):
    _, graph, result = cnn_snapshots[1]
    report = analyze(graph, result)
    spec = layer_view_spec(graph, result, report, title="big")
    (panel,) = spec.panels
    assert any(g.kind == "diag" for g in graph.groups) and 0 < result.alive.mean() < 1
    for group in graph.groups:
        share = result.alive[group.offset:group.offset + group.size].mean()
        assert spec.info["alive_share"][group.name] == pytest.approx(share)
        drawn = panel.find(Line, "alive share", group.name)
        if group.kind == "diag":  # drawn in the column of the layer it scales
            assert not drawn and not panel.find(Line, "width", group.name)
        else:
            assert (drawn[0].y[1] == pytest.approx(share)) if share > 0 else not drawn
    arcs = panel.find(Line, "block")  # a chain: one arc per non-norm block
    assert [a.name for a in arcs] == [b.name for b in graph.blocks if b.kind != "diag"]
    assert choose_view(graph) == "channels" and choose_view(graph, "layers") == "layers"


def test_input_pixels_match_boolean_reachability():
    torch.manual_seed(0)
    model = build_model("lenet300", input_shape=(1, 28, 28))
    _prune_random(model, 300.0)
    graph = trace(model, input_shape=(1, 28, 28))
    result = flows(graph)
    pixels = input_pixels(graph, result, (1, 28, 28))
    a1, a2, a3 = ((m.weight != 0).double() for m in model if isinstance(m, torch.nn.Linear))
    reaches = ((a3 @ a2 @ a1).sum(0) > 0).numpy().reshape(28, 28)  # some path from the pixel to an output
    assert pixels.shape == (28, 28) and 0 < reaches.sum() < 784
    assert np.array_equal(pixels > 0, reaches)
    fed = ((a1 > 0) & ((a3 @ a2).sum(0) > 0)[:, None]).sum(0).numpy().reshape(28, 28)  # alive units fed
    assert np.array_equal(pixels, fed)
    cnn = build_model("smallcnn")
    cnn_graph = trace(cnn, input_shape=(1, 28, 28))
    assert input_pixels(cnn_graph, flows(cnn_graph), (1, 28, 28)) is None


def test_plot_model_writes_paths_layers_and_pixels(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet300", input_shape=(1, 28, 28))
    _prune_random(model, 30.0)
    graph = trace(model, input_shape=(1, 28, 28))
    result = flows(graph)
    written = plot_model(graph, result, None, tmp_path, "m", title="lenet300 · m.pt", input_shape=(1, 28, 28))
    _check_files(written)
    assert sorted(p.name for p in written.by_suffix(".png")) == ["m_layers.png", "m_paths.png", "m_pixels.png"]
    assert written.info["paths"]["view"] == "channels"
    assert written.info["paths"]["spec"].title == "Surviving input→output paths — lenet300 · m.pt"
    assert written.info["pixels"]["pixels_reaching"] == int((input_pixels(graph, result, (1, 28, 28)) > 0).sum())


# --- comparison figures ---------------------------------------------------------------


def _records():
    """Two protocols, two seeds, five levels. random disconnects at 10^2 (and has a
    collapsed layer then), snip collapses a layer at 10^2 but stays connected,
    magnitude disconnects at 10^2.5, my_method repeats synflow exactly, and in
    'post' magnitude+l1+connect starts from its own dense model."""
    rows = []
    layers = ["1.weight", "3.weight", "5.weight"]
    for protocol in ("init", "post"):
        methods = [("synflow", 99.0), ("random", 2.0), ("magnitude", 2.5), ("my_method", 99.0), ("snip", 99.0)]
        if protocol == "post":
            methods.append(("magnitude+l1+connect", 99.0))
        for method, cut_at in methods:
            for seed in range(2):
                for exponent in (0.5, 1.0, 1.5, 2.0, 2.5):
                    tc = 10**exponent
                    disconnected = exponent >= cut_at
                    collapsed = (disconnected and method == "random") or (method == "snip" and exponent >= 2.0)
                    rows.append({
                        "method": method, "protocol": protocol, "target_compression": tc,
                        "nominal_compression": tc, "seed": seed,
                        "effective_compression": None if disconnected else tc * (1 + 0.1 * exponent),
                        "accuracy_before_finetune": 0.9 - 0.1 * exponent,
                        "accuracy_after_finetune": 0.1 if disconnected else 0.98 - 0.05 * exponent + 0.01 * seed
                        - (0.1 if method == "snip" else 0.0),
                        "dense_accuracy": (0.97 + 0.002 * seed) if method == "magnitude+l1+connect" else 0.985 + 0.001 * seed,
                        "log_phi": None if disconnected else float("nan") if seed and exponent == 1.0
                        else 20 - 5 * exponent,
                        "dead": 10, "disconnected": disconnected,
                        "collapsed_layers": ["5.weight"] if collapsed else [],
                        "cut_layers": ["5.weight"] if disconnected or collapsed else [],
                        "parameters": int(266_200 / tc), "flops": 0,
                        "layers": {name: {"density": 0.0 if collapsed and name == "5.weight" else 1 / tc,
                                          "alive_density": 0.0 if disconnected or collapsed else 0.9 / tc}
                                   for name in layers},
                    })
    return rows


def _event(panel, role, method):
    return [m for m in panel.find(Line, role) if m.name == method]


def test_accuracy_spec_content():
    spec = accuracy_spec(_records(), accuracy="both")
    init, post, post_before = spec.panels
    assert [p.title for p in spec.panels] == ["pruned at initialisation, then trained",
                                              "pruned after training, fine-tuned",
                                              "pruned after training, before fine-tuning"]
    assert init.xlog and init.xlabel == "compression (total / remaining weights)" and init.ylabel == "test accuracy (%)"
    assert spec.notes == ["Pruned at initialisation: the accuracy before training (chance) is not drawn."]
    assert not init.find(Line, "before") and not post.find(Line, "before") and not post_before.find(Line, "after")
    after = {m.name: m for m in init.find(Line, "after")}
    assert list(after) == ["synflow", "magnitude", "snip", "random", "my_method"]  # fixed method order
    synflow = after["synflow"]
    assert np.allclose(synflow.y, [100 * (0.98 - 0.05 * e + 0.005) for e in (0.5, 1.0, 1.5, 2.0, 2.5)])
    assert synflow.color == method_color("synflow") and synflow.marker == method_marker("synflow")
    # before fine-tuning: dashed, hollow markers; the dense line: solid, no marker
    before = post_before.find(Line, "before")[0]
    assert np.allclose(before.y, [100 * (0.9 - 0.1 * e) for e in (0.5, 1.0, 1.5, 2.0, 2.5)])
    (dense,) = init.find(HLine, "dense")
    assert before.linestyle == "dashed" and before.hollow and dense.linestyle == "solid"
    assert dense.y == pytest.approx(98.55) and init.subtitle == "dense: 98.6"
    # collapse (connected) and disconnection get different markers, at their first level
    (snip_collapse,) = _event(init, "collapse", "snip")
    (random_lost,) = _event(init, "disconnected", "random")
    assert snip_collapse.marker == "X" and random_lost.marker == "circle-x"
    assert list(snip_collapse.x) == [pytest.approx(100.0)] and list(random_lost.x) == [pytest.approx(100.0)]
    assert random_lost.y == [pytest.approx(10.0)]  # on the curve
    assert not _event(init, "collapse", "random") and not _event(init, "disconnected", "snip")
    assert list(_event(init, "disconnected", "magnitude")[0].x) == [pytest.approx(10**2.5)]
    # each protocol's dense baseline is the model its runs started from, never their average
    for panel in (post, post_before):
        baselines = sorted((d.y, d.name) for d in panel.find(HLine, "dense"))
        assert [round(y, 3) for y, _ in baselines] == [97.1, 98.55]
        assert baselines[0][1] == "dense start of magnitude+l1+connect: 97.1"
        assert baselines[0][1] and panel.subtitle == "dense: 98.6, 97.1 (magnitude+l1+connect)"
    assert spec.info["dense"]["post"][1] == (pytest.approx(97.1), ["magnitude+l1+connect"])
    # curves hiding each other are noted, and the lower one gets rings
    assert init.notes == ["synflow lies under my_method (identical)"]
    assert after["synflow"].hollow and not after["my_method"].hollow
    labels = spec.legend_labels()
    assert {"before fine-tuning (dashed)", "first layer collapse (still connected)", "first disconnection (φ = 0)",
            "dense model the runs started from"} <= set(labels)
    markers = {e.label: e.marker for e in spec.legend}
    assert markers["first layer collapse (still connected)"] != markers["first disconnection (φ = 0)"]
    # one stage only: one panel per protocol
    assert [p.title for p in accuracy_spec(_records(), accuracy="before").panels] == [
        "pruned at initialisation, before training", "pruned after training, before fine-tuning"]


def test_overlap_is_noted_only_within_a_small_share_of_the_axis():
    records = [dict(r) for r in _records() if r["protocol"] == "init" and r["method"] in ("synflow", "my_method")]
    for r in records:
        if r["method"] == "my_method":
            r["accuracy_after_finetune"] += 0.001  # 0.1 points apart on a ~15-point axis: hidden
    assert accuracy_spec(records, accuracy="after").panels[0].notes == [
        "synflow lies under my_method (differences ≤ 0.1)"]
    for r in records:
        if r["method"] == "my_method":
            r["accuracy_after_finetune"] += 0.02  # 2.1 points apart: both visible
    assert accuracy_spec(records, accuracy="after").panels[0].notes == []


def test_log_phi_and_effective_specs_put_disconnected_runs_in_a_strip():
    records = _records()
    spec = log_phi_spec(records)
    init = spec.panels[0]
    (strip,) = init.find(Span, "strip")
    finite = [v for m in init.find(Line, "mean") for v in m.y]
    assert init.ylim[0] <= strip.start < strip.stop < min(finite)
    lost = {m.name: m for m in init.find(Line, "disconnected")}
    assert set(lost) == {"random", "magnitude"}
    assert all(strip.start < y < strip.stop for m in lost.values() for y in m.y)
    assert list(lost["random"].x) == pytest.approx([100.0, 10**2.5])
    assert [m.name for m in init.find(Line, "collapse")] == ["snip"]
    # the seed with NaN log phi at 10x is left out of the mean, not averaged as 0
    assert init.find(Line, "mean")[0].y[1] == pytest.approx(15.0)

    eff = effective_spec(records).panels[1]
    (strip,) = eff.find(Span, "strip")
    top = max(v for m in eff.find(Line, "run") for v in m.y)
    assert top < strip.start < strip.stop <= eff.ylim[1]
    assert {m.name for m in eff.find(Line, "disconnected")} == {"random", "magnitude"}
    assert eff.xlog and eff.ylog and eff.ylabel == "effective compression (total / alive)"


def test_density_specs_mark_zero_cells():
    specs = density_specs(_records())
    assert [s.name for s in specs] == ["layer_density_init", "layer_density_post"]
    init = specs[0]
    assert init.info["methods"] == ["synflow", "magnitude", "snip", "random", "my_method"]
    heat = {p.title: p.marks[0] for p in init.panels}
    assert heat["random"].z.shape == (3, 5) and (heat["random"].z[:, 3:] == 0).all()
    assert (heat["snip"].z[:, 3:] == 0).all() and (heat["synflow"].z > 0).all()
    assert heat["synflow"].x_labels == ["10^0.5", "10", "10^1.5", "100", "10^2.5"]


def test_comparison_writers_handle_missing_and_empty_records(tmp_path):
    records = _records() + [{"method": "synflow", "protocol": "init", "target_compression": 10.0}]  # a bare row
    for figure in (effective_vs_nominal, log_phi_vs_compression):
        _check_files(figure(records, tmp_path))
    both = accuracy_vs_compression(records, tmp_path, "acc_both", accuracy="both", formats=("png", "svg"))
    _check_files(both, (".png", ".svg", ".html"))
    assert "first disconnection" in _html(both.by_suffix(".html")[0])
    single = layer_density_heatmap(records, tmp_path, "dens", protocol="post", density="density", methods=["random"])
    assert {p.name for p in single} == {"dens.png", "dens.html"}
    _check_files(accuracy_vs_compression([], tmp_path / "empty"))
    for spec in (accuracy_spec([]), effective_spec([]), log_phi_spec([])):
        assert spec.panels == []
    assert [s.panels for s in density_specs([])] == [[]]
    with pytest.raises(ValueError):
        accuracy_spec(records, accuracy="sometimes")


def test_method_colours_are_fixed_and_distinct():
    known = ["connect", "magnitude+l1+connect", "synflow", "magnitude", "magnitude_layerwise", "magnitude+l1",
             "imp", "snip", "grasp", "random"]
    colours = [method_color(m) for m in known]
    assert len(set(colours)) == len(known)
    assert len({method_marker(m) for m in known}) == len(known)
    assert "X" not in {method_marker(m) for m in known}  # kept for "layer collapse"
    assert method_color("synflow_iterative") == method_color("synflow")
    assert method_color("SynFlow") == method_color("synflow")
    assert method_color("some_new_method") == method_color("some_new_method")


# --- netgraph plot ----------------------------------------------------------------------


def _checkpoint(folder, params=None, num_classes=10, compression=30.0):
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_model("lenet300", num_classes=num_classes, input_shape=(1, 28, 28))
    _prune_random(model, compression)
    torch.save(model.state_dict(), folder / "model.pt")
    if params is not None:
        (folder / "params.json").write_text(params if isinstance(params, str) else __import__("json").dumps(params))
    return folder / "model.pt"


def test_cli_plot_reads_params_json_and_shows_progress(run_cli, tmp_path):
    ckpt = _checkpoint(tmp_path / "run", {"model": "lenet300", "input_shape": [1, 28, 28], "num_classes": 5},
                       num_classes=5)
    out = tmp_path / "figs"
    result = run_cli("plot", ckpt, "--out", out)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["model_layers.png", "model_paths.png", "model_pixels.png"]
    assert len(list(out.glob("*.svg"))) == 3 and len(list(out.glob("*.html"))) == 3
    for step in ("loading", "tracing the channel graph", "propagating flows", "drawing the surviving paths (channels view)",
                 "drawing the per-layer weights", "drawing the input pixels"):
        assert step in result.stderr, result.stderr
    assert "lenet300 · run/model.pt" in _html(out / "model_paths.html")
    # num_classes comes from params.json also beside --model; an explicit option wins over it
    assert run_cli("plot", ckpt, "--model", "lenet300", "--out", tmp_path / "x").code == 0
    assert run_cli("plot", ckpt, "--model", "lenet300", "--num-classes", "10", "--out", tmp_path / "y").code == 2


@pytest.mark.parametrize("params, message", [
    (None, "no params.json beside it: pass --model"),
    ("{not json", "is not readable JSON"),
    ({"input_shape": [1, 28, 28]}, 'has no "model" name'),
    ({"model": "lenet300", "input_shape": "1,28,28"}, '"input_shape" must be a list of positive integers'),
    ({"model": "lenet300", "num_classes": 0}, '"num_classes" must be a positive integer'),
])
def test_cli_plot_without_model_needs_a_valid_params_json(run_cli, tmp_path, params, message):
    ckpt = _checkpoint(tmp_path / "run", params)
    result = run_cli("plot", ckpt, "--out", tmp_path / "figs")
    assert result.code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "figs").exists()


def test_cli_plot_explicit_model_wins_and_options(run_cli, tmp_path):
    ckpt = _checkpoint(tmp_path / "run", "{corrupt")
    out = tmp_path / "figs"
    result = run_cli("plot", ckpt, "--model", "lenet300", "--out", out, "--view", "layers", "--plotlyjs", "cdn")
    assert result.code == 0, result.stderr
    assert "layers view" in result.stderr and not (out / "plotly.min.js").exists()
    assert "cdn.plot.ly" in (out / "model_paths.html").read_text()
    shared = tmp_path / "plotly.min.js"
    result = run_cli("plot", ckpt, "--model", "lenet300", "--out", tmp_path / "tree" / "a", "--plotlyjs", shared)
    assert result.code == 0 and shared.is_file() and not list((tmp_path / "tree").rglob("*.js"))
    assert 'src="../../plotly.min.js"' in (tmp_path / "tree" / "a" / "model_paths.html").read_text()
    for bad in (["--view", "pretty"], ["--plotlyjs", "internet"]):
        bad_run = run_cli("plot", ckpt, "--model", "lenet300", "--out", out, *bad)
        assert bad_run.code == 2 and len(bad_run.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_plot_resnet18_defaults_to_the_layer_view(run_cli, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, input_shape=(3, 32, 32))
    _prune_random(model, 100.0)
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "params.json").write_text('{"model": "resnet18", "input_shape": [3, 32, 32], "num_classes": 10}')
    result = run_cli("plot", folder / "model.pt", "--out", tmp_path / "figs")
    assert result.code == 0, result.stderr
    assert "drawing the surviving paths (layers view)" in result.stderr
    assert not (tmp_path / "figs" / "model_pixels.png").exists()


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
    _, _, edge = next(iter(alive.edges(data=True)))
    assert edge["alive"] and edge["weight"] > 0 and edge["path_mass"] > 0 and edge["layer"]
    # path masses of one chain block sum to the share of phi crossing it (1 for a chain)
    first = graph.blocks[0].name
    total = sum(d["path_mass"] for _, _, d in alive.edges(data=True) if d["layer"] == first)
    assert total == pytest.approx(1.0, rel=1e-6)
    path = write_graphml(graph, tmp_path / "g.graphml", result)
    back = nx.read_graphml(path)
    assert back.number_of_nodes() == graph.n_nodes and back.number_of_edges() == digraph.number_of_edges()
