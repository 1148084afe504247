"""Structural pruning through the Torch-Pruning (DepGraph) adapter."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
import torchvision
from torch import nn

from netgraph.connectivity.propagate import flows
from netgraph.errors import NetgraphError
from netgraph.graph.tracer import trace
from netgraph.pruning import METHODS, prunable_parameters, structural_prune
from netgraph.pruning.structured import (
    IMPORTANCES,
    count,
    prune_to_macs,
    resize_to_state,
    structured_state,
)
from netgraph.training.models import build_model


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )


def test_resnet18_loses_half_its_channels_and_still_runs():
    model = torchvision.models.resnet18(num_classes=10).train()
    before = sum(p.numel() for p in model.parameters())

    structural_prune(model, torch.randn(1, 3, 32, 32), 0.5)

    assert model.conv1.out_channels == 32
    assert model.bn1.running_mean.shape == (32,)
    assert model.layer4[1].conv2.out_channels == 256
    assert (model.fc.in_features, model.fc.out_features) == (256, 10)  # the head is ignored
    assert sum(p.numel() for p in model.parameters()) < 0.3 * before
    assert all(m.training for m in model.modules())
    assert int(model.bn1.num_batches_tracked) == 0  # tracing ran in eval mode
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


class KeepHighIndices(tp.importance.Importance):
    """Channel ``i`` of a group has importance ``i``: the first ones go."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, group: tp.Group) -> torch.Tensor:
        self.calls += 1
        return torch.arange(len(group[0].idxs), dtype=torch.float32)


def test_a_custom_importance_decides_which_channels_go():
    model = small_cnn()
    first = model[0].weight.detach().clone()
    importance = KeepHighIndices()

    structural_prune(model, torch.randn(1, 3, 8, 8), 0.5, importance)

    assert importance.calls > 0
    assert model[0].out_channels == 4
    torch.testing.assert_close(model[0].weight, first[4:])
    assert model[-1].out_features == 5


def test_taylor_importance_uses_one_batch_of_gradients_and_clears_them():
    model = small_cnn()
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,)))
    structural_prune(model, batch[0][:1], 0.25, "taylor", batch=batch, loss_fn=F.cross_entropy)
    assert model[0].out_channels == 6
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(NetgraphError, match="batch"):
        structural_prune(small_cnn(), batch[0][:1], 0.25, "taylor")


@pytest.mark.parametrize("ratio", [1.0, -0.1])
def test_bad_ratio_is_a_user_error(ratio):
    with pytest.raises(NetgraphError, match="ratio"):
        structural_prune(small_cnn(), torch.randn(1, 3, 8, 8), ratio)


def test_unknown_importance_and_masked_models_are_user_errors():
    with pytest.raises(NetgraphError, match="magnitude, taylor, connect"):
        structural_prune(small_cnn(), torch.randn(1, 3, 8, 8), 0.5, "hessian")
    model = small_cnn()
    METHODS["magnitude"].prune(model, prunable_parameters(model), sparsity=0.5)
    with pytest.raises(NetgraphError, match="permanent"):
        structural_prune(model, torch.randn(1, 3, 8, 8), 0.5)


def _channels(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize("importance", IMPORTANCES)
def test_every_importance_name_prunes_and_only_taylor_ones_need_a_batch(importance):
    model = small_cnn()
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,)))
    if "taylor" in importance:
        with pytest.raises(NetgraphError, match="batch"):
            structural_prune(small_cnn(), batch[0][:1], 0.5, importance)
    outcome = structural_prune(model, batch[0][:1], 0.5, importance, batch=batch if "taylor" in importance else None)
    assert _channels(model) == {"0": 4, "3": 4}
    assert outcome.removed == {"0": 4, "3": 4}
    assert model(batch[0]).shape == (4, 5)


def _reloaded(model: nn.Module, name: str, shape: tuple[int, ...], **kwargs) -> nn.Module:
    fresh = build_model(name, input_shape=shape, **kwargs)
    fresh.load_state_dict(resize_to_state(fresh, structured_state(model)))
    return fresh


@pytest.mark.parametrize(("name", "shape"), [("resnet20", (3, 32, 32)), ("lenet5", (1, 28, 28))])
def test_pruned_project_models_are_smaller_connected_and_reload_from_tensors(name, shape):
    model = build_model(name, input_shape=shape)
    example = torch.randn(1, *shape)
    params, macs = count(model, example)

    structural_prune(model, example, 0.5, "connect")

    assert count(model, example)[0] < 0.5 * params and count(model, example)[1] < 0.5 * macs
    assert np.isfinite(flows(trace(model, input_shape=shape)).log_phi)
    twin = _reloaded(model, name, shape)
    x = torch.randn(3, *shape)
    torch.testing.assert_close(twin.eval()(x), model.eval()(x))


def test_a_ratio_that_would_empty_a_layer_is_clamped_and_said():
    model = build_model("lenet5")  # its first conv has 6 channels: 0.9 would keep none
    outcome = structural_prune(model, torch.randn(1, 1, 28, 28), 0.9, "magnitude")
    assert outcome.clamped and "clamped" in outcome.clamped
    assert min(_channels(model).values()) == 1
    assert np.isfinite(flows(trace(model, input_shape=(1, 28, 28))).log_phi)


def test_a_mac_target_is_reached_with_the_smallest_ratio():
    model = build_model("resnet20")
    example = torch.randn(1, 3, 32, 32)
    macs = count(model, example)[1]
    outcome = prune_to_macs(model, example, 2.0, "magnitude", steps=8)
    after = count(model, example)[1]
    assert after <= macs / 2
    looser = build_model("resnet20")
    structural_prune(looser, example, outcome.ratio - 0.02, "magnitude")
    assert count(looser, example)[1] > macs / 2  # a smaller ratio misses the target
    with pytest.raises(NetgraphError, match="out of reach"):
        prune_to_macs(build_model("lenet5"), torch.randn(1, 1, 28, 28), 1000.0, steps=1)


def test_depthwise_convs_reload_with_their_groups():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=8, padding=1),
                          nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    example = torch.randn(1, 3, 8, 8)
    fresh = copy.deepcopy(model)
    structural_prune(model, example, 0.5, "magnitude+connect")
    assert model[2].groups == model[2].out_channels == 4
    fresh.load_state_dict(resize_to_state(fresh, structured_state(model)))
    assert fresh[2].groups == 4
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))


def test_a_parameter_torch_pruning_cannot_group_is_named_and_nothing_changes(tests_on_path):
    from structured_models import scaled

    model = scaled()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NetgraphError, match="'scale' of module Scaled"):
        structural_prune(model, torch.randn(1, 3, 8, 8), 0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_torchvision_resnet18_reloads_after_connect_pruning():
    model = torchvision.models.resnet18(num_classes=10)
    example = torch.randn(1, 3, 32, 32)
    structural_prune(model, example, 0.5, "connect")
    assert model.conv1.out_channels == 32
    assert np.isfinite(flows(trace(model, input_shape=(3, 32, 32))).log_phi)
    fresh = torchvision.models.resnet18(num_classes=10)
    fresh.load_state_dict(resize_to_state(fresh, structured_state(model)))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))


def _top_quarter_share(model: nn.Module) -> float:
    """Mean over convs of the share of output-channel L2 norm held by the top quarter of channels."""
    shares = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            norms = module.weight.detach().flatten(1).norm(dim=1).sort(descending=True).values
            shares.append(float(norms[: max(1, len(norms) // 4)].sum() / norms.sum()))
    return sum(shares) / len(shares)


def test_connect_sparse_training_lowers_structured_r_and_concentrates_channel_norms():
    from netgraph.connect.regularizer import CoNNect
    from netgraph.pruning.structured import connect_sparse_training
    from netgraph.training.data import load_dataset, make_loaders
    from netgraph.training.engine import TrainConfig, seed_everything, train

    splits = load_dataset("digits")
    models = {}
    for arm in ("plain", "connect"):
        seed_everything(0)
        models[arm] = build_model("smallcnn", num_classes=10, input_shape=splits.input_shape)
        loaders = make_loaders(splits, 64, seed=0)
        if arm == "plain":
            config = TrainConfig(epochs=2, optimizer="adam", lr=3e-3, weight_decay=0.0)
            train(models[arm], *loaders, config, progress=False)
        else:
            connect_sparse_training(models[arm], *loaders, splits.input_shape, 2.0, 2, lr=3e-3)
    r = {arm: float(CoNNect(m, input_shape=splits.input_shape, structured=True, gates=True)().detach())
         for arm, m in models.items()}
    assert r["connect"] < r["plain"] - 0.1
    assert _top_quarter_share(models["connect"]) > _top_quarter_share(models["plain"]) + 0.02
    with pytest.raises(NetgraphError, match="lambda_r"):
        connect_sparse_training(models["plain"], *loaders, splits.input_shape, 0.0, 1)
