"""Reports (DESIGN.md section 2): dead weights, collapse, cut layers, constant units, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from netgraph.connectivity.propagate import flows
from netgraph.connectivity.report import SCHEMA_VERSION, alive_weight_masks, analyze
from netgraph.graph.tracer import trace

pytestmark = pytest.mark.usefixtures("one_thread")


def layer(report, name: str):
    (found,) = [entry for entry in report.layers if entry.name == name]
    return found


def synflow_phi(model: nn.Sequential, n_in: int) -> float:
    vector = torch.ones(n_in, dtype=torch.float64)
    for module in model:
        if isinstance(module, nn.Linear):
            vector = module.weight.detach().double().abs() @ vector
    return float(vector.sum())


def test_dense_mlp_is_fully_alive(mlp: nn.Sequential) -> None:
    report = analyze(trace(mlp, input_shape=(3,)))
    assert report.parameters == report.nonzero == report.alive == 12 + 16 + 8
    assert report.dead == 0 and report.nominal_compression == report.effective_compression == 1.0
    assert [entry.path_share for entry in report.layers] == pytest.approx([1.0, 1.0, 1.0])
    assert (report.inputs, report.inputs_alive, report.outputs, report.outputs_alive) == (3, 3, 2, 2)


def test_dead_weights_and_constant_units_by_hand(mlp: nn.Sequential) -> None:
    with torch.no_grad():
        mlp[2].weight[:, 1] = 0  # hidden-1 unit 1 has no outgoing weight: its 3 input weights are dead
        mlp[0].weight[2] = 0  # hidden-1 unit 2 has no input weight...
        mlp[0].bias[2] = 0.5  # ...but a bias: a constant unit, and its 4 outgoing weights are dead
    graph = trace(mlp, input_shape=(3,))
    result = flows(graph)
    report = analyze(graph, result)
    first, second, third = (layer(report, n) for n in ("0.weight", "2.weight", "4.weight"))
    assert (first.nonzero, first.alive, first.dead) == (9, 6, 3)
    assert (second.nonzero, second.alive, second.dead) == (12, 8, 4)
    assert (third.nonzero, third.alive, third.dead) == (8, 8, 0)
    assert (first.out_alive, second.in_alive, second.out_alive) == (2, 2, 4)
    assert first.constant_units == 1 and report.constant_units == 1
    assert report.dead == 7 and report.alive == 22
    assert report.nominal_compression == pytest.approx(36 / 29)
    assert report.effective_compression == pytest.approx(36 / 22)
    assert report.bottleneck == "0.weight"  # 1/2 alive like 2.weight, but fewer alive outputs
    assert report.cut_layers == [] and report.collapsed_layers == [] and not report.disconnected
    masks = alive_weight_masks(graph, result)
    expected = mlp[0].weight != 0
    expected[1] = False
    assert torch.equal(masks["0.weight"], expected)
    expected = mlp[2].weight != 0
    expected[:, 2] = False
    assert torch.equal(masks["2.weight"], expected)
    # Dead weights are on no path: phi is unchanged when they are removed.
    assert math.exp(report.log_phi) == pytest.approx(synflow_phi(mlp, 3), rel=1e-12)
    with torch.no_grad():
        for key, mask in masks.items():
            mlp.get_submodule(key.rpartition(".")[0]).weight.mul_(mask)
    assert analyze(graph).log_phi == pytest.approx(report.log_phi, rel=1e-12)
    assert analyze(graph).dead == 0


def test_all_zero_layer_collapses_and_disconnects(mlp: nn.Sequential) -> None:
    with torch.no_grad():
        mlp[2].weight.zero_()
    report = analyze(trace(mlp, input_shape=(3,)))
    assert report.disconnected and report.log_phi == -math.inf
    assert report.collapsed_layers == ["2.weight"]
    assert report.cut_layers == ["0.weight", "2.weight", "4.weight"]
    assert report.alive == 0 and report.dead == report.nonzero == 12 + 8
    assert report.outputs_alive == 0 and report.inputs_alive == 0
    assert report.effective_compression == math.inf
    data = report.to_dict()
    assert data["log_phi"] is None and data["effective_compression"] is None
    json.dumps(data, allow_nan=False)


class SkipNet(nn.Module):
    """stem -> (branch: b1 -> ReLU -> b2) + identity -> head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.b1 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.b2 = nn.Conv2d(3, 3, 1, bias=False)
        self.head = nn.Linear(3, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = y + self.b2(torch.relu(self.b1(y)))
        return self.head(y.mean((2, 3)))


def test_skip_connection_keeps_a_cut_branch_connected() -> None:
    model = SkipNet()
    graph = trace(model, input_shape=(2, 4, 4))
    dense = analyze(graph)
    with torch.no_grad():
        model.b1.weight.zero_()
    report = analyze(graph)
    assert not report.disconnected and math.isfinite(report.log_phi)
    assert report.collapsed_layers == ["b1.weight"]
    assert report.cut_layers == ["b1.weight", "b2.weight"]
    assert layer(report, "b2.weight").dead == 9 and layer(report, "b2.weight").path_share == 0
    assert layer(report, "stem.weight").path_share == pytest.approx(1.0)
    assert layer(report, "head.weight").dead == 0
    # Only the identity path remains: phi = 1^T |W_head| (stem edge sums) 1.
    stem = model.stem.weight.detach().double().abs().sum((2, 3))
    head = model.head.weight.detach().double().abs()
    assert math.exp(report.log_phi) == pytest.approx(float((head @ stem).sum()), rel=1e-6)
    assert report.log_phi < dense.log_phi


def test_bias_free_constants_of_batchnorm_are_counted() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1, bias=False), nn.BatchNorm2d(3), nn.Conv2d(3, 1, 1))
    with torch.no_grad():
        model[0].weight[1:] = 0  # channels 1 and 2: no input reaches them
        model[1].running_mean.copy_(torch.tensor([0.3, 0.0, 0.7]))  # channel 2 shifts by its mean
        model[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0]))
    graph = trace(model, input_shape=(1, 2, 2))
    assert analyze(graph).constant_units == 1
    with torch.no_grad():
        model[1].bias[1] = 1.0  # channel 1 now adds beta
    assert analyze(graph).constant_units == 2
    with torch.no_grad():
        model[2].weight.zero_()  # the BN constants reach no output any more...
    assert analyze(graph).constant_units == 1  # ...but the output unit's own bias is one
    with torch.no_grad():
        model[2].bias.zero_()
    assert analyze(graph).constant_units == 0


def test_nonfinite_weights_are_reported_and_do_not_break_the_analysis(mlp: nn.Sequential) -> None:
    with torch.no_grad():
        mlp[2].weight[0, 0] = math.nan
        mlp[2].weight[1, 1] = math.inf
    graph = trace(mlp, input_shape=(3,))
    report = analyze(graph)
    assert report.nonfinite_weights == 2 and layer(report, "2.weight").nonfinite == 2
    assert math.isfinite(report.log_phi) and not report.disconnected
    # NaN/Inf count as present for reachability and as zero for flows.
    clean = mlp[2].weight.detach().clone()
    clean[~torch.isfinite(clean)] = 0
    with torch.no_grad():
        mlp[2].weight.copy_(clean)
    assert analyze(graph).log_phi == pytest.approx(report.log_phi, rel=1e-12)
    assert report.dead == 0 and report.alive == report.parameters
    json.dumps(report.to_dict(), allow_nan=False)


def test_all_nan_layer_has_zero_flow_but_stays_reachable(mlp: nn.Sequential) -> None:
    with torch.no_grad():
        mlp[2].weight.fill_(math.nan)
    report = analyze(trace(mlp, input_shape=(3,)))
    assert report.log_phi == -math.inf
    assert not report.disconnected and report.outputs_alive == 2
    assert report.nonfinite_weights == 16


def test_edge_path_mass_sums_to_block_share_and_centrality_to_one() -> None:
    model = SkipNet()
    graph = trace(model, input_shape=(2, 4, 4))
    result = flows(graph)
    for blk in graph.blocks:
        assert result.edge_path_mass(blk).sum() == pytest.approx(result.centrality()[blk.dst.nodes].sum(), rel=1e-9)
    centrality = result.centrality()
    assert centrality[graph.input_nodes].sum() == pytest.approx(1.0)
    assert centrality[graph.output_nodes].sum() == pytest.approx(1.0)


def test_report_dict_has_the_documented_keys(mlp: nn.Sequential) -> None:
    data = analyze(trace(mlp, input_shape=(3,))).to_dict()
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert set(data) == {
        "schema_version", "model", "nodes", "edges", "log_phi", "disconnected", "inputs", "inputs_alive",
        "outputs", "outputs_alive", "parameters", "nonzero", "alive", "dead", "nominal_compression",
        "effective_compression", "collapsed_layers", "cut_layers", "bottleneck", "constant_units",
        "nonfinite_weights", "layers",
    }
    assert set(data["layers"][0]) == {
        "name", "shape", "parameters", "nonzero", "alive", "dead", "nonfinite", "in_width", "in_alive",
        "out_width", "out_alive", "path_share", "constant_units", "collapsed", "cut",
    }
    assert data["layers"][0]["shape"] == [4, 3]
    assert (data["nodes"], data["edges"]) == (3 + 4 + 4 + 2, 36)
    json.dumps(data, allow_nan=False)


def test_grouped_conv_masks_follow_groups() -> None:
    """Depthwise conv: a dead input channel kills exactly its own filter."""
    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        model[0].weight[2] = 0
        model[0].bias.zero_()
    graph = trace(model, input_shape=(1, 3, 3))
    masks = alive_weight_masks(graph, flows(graph))
    expected = torch.ones(4, 1, 3, 3, dtype=torch.bool)
    expected[2] = False
    assert torch.equal(masks["1.weight"], expected)
    expected = torch.ones(2, 4, 1, 1, dtype=torch.bool)
    expected[:, 2] = False
    assert torch.equal(masks["2.weight"], expected)
    assert np.array_equal(flows(graph).alive[graph.blocks[1].dst.nodes], [True, True, False, True])
