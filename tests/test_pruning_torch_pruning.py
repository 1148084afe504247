"""Structural pruning through the Torch-Pruning (DepGraph) adapter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
import torchvision
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.pruning import METHODS, prunable_parameters, structural_prune


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
    with pytest.raises(NetgraphError, match="magnitude or taylor"):
        structural_prune(small_cnn(), torch.randn(1, 3, 8, 8), 0.5, "hessian")
    model = small_cnn()
    METHODS["magnitude"].prune(model, prunable_parameters(model), sparsity=0.5)
    with pytest.raises(NetgraphError, match="permanent"):
        structural_prune(model, torch.randn(1, 3, 8, 8), 0.5)
