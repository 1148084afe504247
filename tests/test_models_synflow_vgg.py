"""SynFlow's VGG-16-BN (``vgg16_bn_synflow``): size by hand, init statistics, tracing,
connectivity, and the name through ``build_model`` and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from netgraph.connectivity.report import analyze
from netgraph.errors import NetgraphError
from netgraph.graph.tracer import trace
from netgraph.parameters import prunable_parameters
from netgraph.training.models import MODELS, build_model, default_input_shape

NAME = "vgg16_bn_synflow"
# (in, out) channels of the 13 3x3 convs of the plan 64,64,M,128,128,M,256x3,M,512x3,M,512x3
CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
         (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(NAME, num_classes=100).eval()


def test_parameter_count_matches_a_hand_count(model: nn.Module) -> None:
    # Hand count: conv 3*3*in*out weights + out biases; BN scale + shift per channel;
    # Linear 512*100 + 100. The prunable weights (SynFlow prunes no bias, no BN):
    # 1728 + 36864 + 73728 + 147456 + 294912 + 2*589824 + 1179648 + 5*2359296 + 51200,
    # the same 'size' column as SynFlow's published compression-*.pkl tables.
    prunable = 14_761_664
    conv_bias, bn = 4_224, 2 * 4_224  # 2*64 + 2*128 + 3*256 + 6*512 channels
    assert sum(9 * i * o for i, o in CONVS) + 512 * 100 == prunable
    assert sum(p.numel() for p in model.parameters()) == prunable + conv_bias + bn + 100
    weights = prunable_parameters(model)
    assert len(weights) == 14 and sum(getattr(m, n).numel() for m, n in weights) == prunable


def test_layout_is_synflows(model: nn.Module) -> None:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == CONVS
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4  # none after the last block
    assert isinstance(model.features[-1], nn.AvgPool2d)
    assert (model.classifier.in_features, model.classifier.out_features) == (512, 100)
    # every conv is followed by its BN and a ReLU
    layers = list(model.features)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], nn.ReLU)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_init_is_kaiming_normal_fan_in_with_zero_biases(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.detach().double()
            fan_in = w[0].numel()
            expected = math.sqrt(2 / fan_in)  # ReLU gain, fan-in mode (not torchvision's fan-out)
            # sample std of n normals has relative error ~ 1/sqrt(2n) <= 1.7% here
            assert w.std().item() == pytest.approx(expected, rel=0.06), module
            assert abs(w.mean().item()) < 4 * expected / math.sqrt(w.numel())
            assert torch.count_nonzero(module.bias) == 0
        elif isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    # fan-in, not fan-out: these differ by 2x in variance where the width doubles
    conv = model.features[14]  # 128 -> 256
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.02)


def test_traces_and_is_connected(model: nn.Module) -> None:
    report = analyze(trace(model, input_shape=default_input_shape(NAME)))
    assert not report.disconnected and not report.collapsed_layers
    assert len(report.layers) == 14
    assert report.nonzero == report.alive == 14_761_664
    # zero the first conv (of a fresh copy): every layer after it loses all its paths
    broken = build_model(NAME, num_classes=100).eval()
    with torch.no_grad():
        broken.features[0].weight.zero_()
    report = analyze(trace(broken, input_shape=default_input_shape(NAME)))
    assert report.disconnected and report.collapsed_layers == ["features.0.weight"]


def test_registered_and_built_through_the_cli(run_cli, tmp_path: Path) -> None:
    assert NAME in MODELS and default_input_shape(NAME) == (3, 32, 32)
    out = tmp_path / "report.json"
    result = run_cli("analyze", NAME, "--num-classes", "100", "--json", out)
    assert result.code == 0, result.err
    report = json.loads(out.read_text())
    assert report["nonzero"] == 14_761_664 and not report["disconnected"]


def test_needs_a_32x32_image() -> None:
    with pytest.raises(NetgraphError, match="needs a 32x32 image"):
        build_model(NAME, input_shape=(3, 64, 64))
    with pytest.raises(NetgraphError, match=r"needs an input shape \(C, H, W\)"):
        build_model(NAME, input_shape=(3072,))
