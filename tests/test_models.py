"""Model registry: forward passes, fx tracing, literature sizes, import paths, errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.training.data import load_dataset, make_loaders
from netgraph.training.models import (
    MODELS,
    build_model,
    default_input_shape,
    model_names,
)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_project_model_runs_and_traces_on_its_default_shape(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=7).eval()
    x = torch.randn(2, *default_input_shape(name))
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 7)
        assert torch.allclose(traced(x), out)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("lenet300", 266_610), ("lenet5", 61_706)],
)
def test_lenet_parameter_counts_match_the_literature(name: str, expected: int) -> None:
    assert _n_params(build_model(name)) == expected


@pytest.mark.parametrize(("name", "millions"), [("resnet20", 0.27), ("resnet56", 0.85)])
def test_cifar_resnet_sizes_match_the_literature(name: str, millions: float) -> None:
    model = build_model(name)
    assert _n_params(model) / 1e6 == pytest.approx(millions, abs=0.01)
    shortcuts = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert len(shortcuts) == 2  # option B: a 1x1 projection where the stage widens


def test_cifar_vgg_ends_in_one_linear_over_512_channels() -> None:
    model = build_model("vgg16_bn_cifar", num_classes=100)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 100)]
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13


def test_conv_weights_use_kaiming_init() -> None:
    torch.manual_seed(0)
    conv = build_model("resnet20").stages[0].conv1  # 16 -> 16 channels, 3x3
    expected = (2 / (16 * 3 * 3)) ** 0.5  # fan_out mode, ReLU gain
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)


def test_models_size_themselves_from_the_input_shape() -> None:
    assert build_model("lenet300", input_shape=(1, 8, 8))[1].in_features == 64
    assert build_model("lenet5").classifier[1].in_features == 16 * 5 * 5
    assert build_model("lenet5", input_shape=(3, 32, 32)).classifier[1].in_features == 16 * 6 * 6
    x = torch.randn(2, 1, 28, 28)
    for name in ("resnet20", "smallcnn", "mlp"):
        assert build_model(name, 3, input_shape=(1, 28, 28))(x).shape == (2, 3)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("lenet5", (1, 8, 8), "too small"),
        ("vgg11_bn_cifar", (3, 16, 16), "smaller than 32x32"),
        ("resnet20", (784,), r"needs an input shape \(C, H, W\)"),
    ],
)
def test_unusable_input_shape_is_a_netgraph_error(
    name: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(NetgraphError, match=message):
        build_model(name, input_shape=shape)


def test_torchvision_models_by_name() -> None:
    model = build_model("resnet18", num_classes=5)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    assert default_input_shape("resnet18") == (3, 224, 224)
    assert default_input_shape("inception_v3") == (3, 299, 299)
    # Auxiliary heads are off, so training mode returns a plain tensor too.
    googlenet = build_model("googlenet", num_classes=4).train()
    assert isinstance(googlenet(torch.randn(2, 3, 64, 64)), torch.Tensor)
    with pytest.raises(NetgraphError, match="RGB"):
        build_model("resnet18", input_shape=(1, 28, 28))


def test_model_names_cover_project_and_torchvision() -> None:
    names = model_names()
    assert names[: len(MODELS)] == MODELS
    assert {"resnet18", "vit_b_16", "inception_v3"} <= set(names)
    assert len(names) == len(set(names))


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of factories, registered under a name only this test can import."""
    module = types.ModuleType("fake_zoo")
    module.no_args = lambda: nn.Linear(4, 2)
    module.needs_width = lambda width: nn.Linear(width, 2)
    module.not_a_model = lambda: 3
    module.constant = 5
    monkeypatch.setitem(sys.modules, "fake_zoo", module)
    return "fake_zoo"


def test_import_path_models(fake_module: str) -> None:
    assert build_model("torchvision.models:resnet18", num_classes=3).fc.out_features == 3
    assert isinstance(build_model(f"{fake_module}:no_args", num_classes=9), nn.Linear)
    assert default_input_shape(f"{fake_module}:no_args") is None


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("needs_width", "needs arguments"),
        ("not_a_model", "not a torch.nn.Module"),
        ("constant", "no callable 'constant'"),
        ("missing", "no callable 'missing'"),
    ],
)
def test_bad_import_path_factories(fake_module: str, attr: str, message: str) -> None:
    with pytest.raises(NetgraphError, match=message):
        build_model(f"{fake_module}:{attr}")


def test_missing_import_path_module() -> None:
    with pytest.raises(NetgraphError, match="cannot import module 'no_such_package_xyz.models'"):
        build_model("no_such_package_xyz.models:net")


def test_unknown_model_lists_valid_names() -> None:
    for call in (build_model, default_input_shape):
        with pytest.raises(NetgraphError) as err:
            call("resnet21")
        message = str(err.value)
        assert "resnet21" in message and all(name in message for name in MODELS)
        assert "torchvision" in message and "package.module:factory" in message


def test_lenet300_learns_mnist5k_in_one_epoch() -> None:
    from netgraph.training.engine import TrainConfig, evaluate, seed_everything, train

    seed_everything(0)
    splits = load_dataset("mnist5k")
    train_loader, test_loader = make_loaders(splits, batch_size=64, seed=0)
    model = build_model("lenet300", splits.num_classes, splits.input_shape)
    chance = evaluate(model, test_loader, torch.device("cpu"))["accuracy"]
    config = TrainConfig(epochs=1, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="none")
    result = train(model, train_loader, test_loader, config, progress=False)
    assert chance < 0.3 and result.final_accuracy > 0.85
