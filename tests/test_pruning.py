"""Unstructured pruning: masks, scores, methods (netgraph.pruning)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from netgraph.errors import NetgraphError
from netgraph.pruning import (
    METHODS,
    ScoreContext,
    apply_masks,
    compression,
    current_masks,
    effective_weight,
    iterative_magnitude,
    make_permanent,
    prunable_parameters,
    register_method,
    remaining,
    scores,
    select_mask,
    sparsity,
    total_weights,
)
from netgraph.pruning.masks import kth_smallest, select_alive
from netgraph.pruning.schedule import keep_schedule

SHAPE = (3, 8, 8)


class ResidualNet(nn.Module):
    """Conv + BN stem, a residual block, a 1x1 shortcut conv and a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
        )
        self.down = nn.Conv2d(8, 16, 1, stride=2)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(x + self.block(x))
        x = F.relu(self.down(x))
        return self.head(x.mean((2, 3)))


def lenet300() -> nn.Sequential:
    """LeNet-300-100 with PyTorch's default init."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def small_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 20), nn.ReLU(), nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 5))


def batches(shape: tuple[int, ...] = SHAPE, classes: int = 10, n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(4, *shape, generator=generator), torch.randint(0, classes, (4,), generator=generator))
        for _ in range(n)
    ]


def mask_count(params) -> int:
    return sum(int(m.sum()) for m in current_masks(params))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- exact targets ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["random", "magnitude", "magnitude_layerwise", "snip", "grasp", "synflow", "connect"])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("iterations", [1, 3])
def test_every_method_hits_the_sparsity_exactly_and_never_revives(method, scope, iterations):
    model = ResidualNet()
    params = prunable_parameters(model)
    n = total_weights(params)
    METHODS["random"].prune(model, params, sparsity=0.5, seed=1)  # a model already pruned
    before = current_masks(params)

    masks = METHODS[method].prune(
        model, params, sparsity=0.8, data=batches(), input_shape=SHAPE, iterations=iterations, scope=scope
    )

    keep = n - round(0.8 * n)
    assert mask_count(params) == keep
    assert remaining(params) == keep
    assert sparsity(params) == pytest.approx(1 - keep / n)
    assert all(torch.equal(m, c) for m, c in zip(masks, current_masks(params)))
    assert all(not (new & ~old).any() for new, old in zip(masks, before))


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_gradient_scores_work_under_no_grad(method):
    model = ResidualNet()
    params = prunable_parameters(model)
    with torch.no_grad():
        METHODS[method].prune(model, params, sparsity=0.5, data=batches(), input_shape=SHAPE, iterations=1)
    assert remaining(params) == total_weights(params) - round(0.5 * total_weights(params))


def test_compression_target_keeps_total_over_compression():
    model = lenet300()
    params = prunable_parameters(model)
    METHODS["magnitude"].prune(model, params, compression=37.3)
    assert remaining(params) == round(total_weights(params) / 37.3)
    assert compression(params) == pytest.approx(37.3, rel=1e-3)


def test_layerwise_keeps_the_same_fraction_of_every_layer():
    model = ResidualNet()
    params = prunable_parameters(model)
    METHODS["magnitude_layerwise"].prune(model, params, sparsity=0.7)
    keep = total_weights(params) - round(0.7 * total_weights(params))
    for (module, name), mask in zip(params, current_masks(params)):
        share = keep * mask.numel() / total_weights(params)
        assert math.floor(share) <= int(mask.sum()) <= math.ceil(share), module


def test_layerwise_gives_a_depleted_layers_share_to_the_others():
    scores_ = [torch.arange(10.0), torch.arange(10.0)]
    alive = [torch.arange(10) == 9, torch.ones(10, dtype=torch.bool)]
    masks = select_mask(scores_, 10, "layerwise", alive)
    assert masks[0].tolist() == alive[0].tolist()
    assert masks[1].tolist() == [False] + [True] * 9


def test_exponential_schedule_removes_the_same_fraction_each_round():
    keeps = keep_schedule(10_000, 10, 3)
    assert keeps == [1000, 100, 10]
    assert keep_schedule(100, 40, 3, "linear") == [80, 60, 40]


# --- selection ----------------------------------------------------------------------


def test_global_magnitude_matches_torch_global_unstructured():
    model = lenet300()
    reference = copy.deepcopy(model)
    params = prunable_parameters(model)
    ref_params = prunable_parameters(reference)
    amount = round(0.93 * total_weights(params))

    METHODS["magnitude"].prune(model, params, sparsity=0.93)
    prune.global_unstructured(ref_params, pruning_method=prune.L1Unstructured, amount=amount)

    for (m, _), (r, _) in zip(params, ref_params):
        assert torch.equal(m.weight_mask, r.weight_mask)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_ties_are_broken_by_flat_index_the_same_way_every_time(scope):
    def pruned_masks() -> list[torch.Tensor]:
        model = small_mlp()
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.constant_(module.weight, 0.5)
        params = prunable_parameters(model)
        METHODS["magnitude"].prune(model, params, sparsity=0.6, scope=scope)
        return current_masks(params)

    first, second = pruned_masks(), pruned_masks()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    flat = torch.cat([m.flatten() for m in first])
    keep = flat.numel() - round(0.6 * flat.numel())
    assert int(flat.sum()) == keep
    if scope == "global":  # all equal: the earliest weights win
        assert flat[:keep].all() and not flat[keep:].any()
    else:
        for mask in first:
            kept = int(mask.sum())
            assert mask.flatten()[:kept].all() and not mask.flatten()[kept:].any()


def test_bfloat16_models_are_pruned_like_float32_ones():
    model = small_mlp()
    twin = copy.deepcopy(model).to(torch.bfloat16)
    masks = [METHODS["magnitude"].prune(m, prunable_parameters(m), sparsity=0.7) for m in (model, twin)]
    agree = sum(int((a == b).sum()) for a, b in zip(*masks)) / sum(a.numel() for a in masks[0])
    assert mask_count(prunable_parameters(twin)) == mask_count(prunable_parameters(model))
    assert agree > 0.97  # rounding to bfloat16 may swap weights of nearly equal magnitude


def test_selection_never_revives_a_pruned_weight_even_with_the_best_score():
    scores_ = [torch.tensor([9.0, 1.0, 2.0, 3.0])]
    alive = [torch.tensor([False, True, True, True])]
    assert select_mask(scores_, 2, "global", alive)[0].tolist() == [False, False, True, True]


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_pruned_entries_marked_below_every_score_change_nothing_in_the_selection(scope):
    """select_alive with ``alive=``: entries scored -1 among nonnegative scores (an iterated
    loop's pruned weights, not yet dropped from its arrays) are never kept and leave the
    rest of the selection, ties included, exactly as without them."""
    generator = torch.Generator().manual_seed(0)
    layers = [torch.randint(0, 6, (n,), generator=generator).double() for n in (700_001, 300, 5_000)]  # ties
    marks = [torch.rand(s.numel(), generator=generator) < 0.2 for s in layers]
    sizes = [s.numel() + 7 for s in layers]
    keep = sum(int((~m).sum()) for m in marks) // 3
    expected = select_alive([s[~m] for s, m in zip(layers, marks)], keep, scope, sizes)
    marked = [s.masked_fill(m, -1.0) for s, m in zip(layers, marks)]
    alive = [int((~m).sum()) for m in marks]
    if scope == "global":  # the layers as one tensor, as the CoNNect loop passes them
        flags = select_alive([torch.cat(marked)], keep, scope, sizes, alive=alive)[0].split([s.numel() for s in layers])
    else:
        flags = select_alive(marked, keep, scope, sizes, alive=alive)
    assert sum(int(f.sum()) for f in flags) == keep
    for f, m, e in zip(flags, marks, expected):
        assert not f[m].any()
        assert torch.equal(f[~m], e)


@pytest.mark.parametrize(
    "values",
    [
        torch.rand(700_001, dtype=torch.float64) ** 8,
        torch.randint(0, 4, (700_001,)).double(),  # few distinct values: ties everywhere
        torch.arange(700_001).double(),
        torch.arange(700_001).flip(0).float(),
        (torch.arange(700_001) % 10).float(),  # periodic with the sample's stride
        torch.zeros(700_001),
        torch.where(torch.rand(700_001) < 0.3, -1.0, torch.rand(700_001)).double(),  # 30% marked pruned
    ],
)
def test_kth_smallest_is_exact_at_both_ends_and_in_the_middle(values):
    n = values.numel()
    ordered = torch.sort(values).values  # the reference (torch.kthvalue is quadratic on reversed input)
    for k in (1, 2, n // 100, n // 20, n // 2, n // 2 + 1, n - n // 20, n - 1, n):
        assert kth_smallest(values, k) == ordered[k - 1], k


# --- scores -------------------------------------------------------------------------


def synflow_by_mutation(model: nn.Module) -> list[torch.Tensor]:
    """The SynFlow repository's procedure on a copy: double, abs every state tensor
    in place, forward ones in eval mode, backward the sum, |grad * w|."""
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    model(torch.ones(1, *SHAPE, dtype=torch.float64)).sum().backward()
    return [(p.weight.grad * p.weight).abs() for p, _ in prunable_parameters(model)]


def test_synflow_matches_the_reference_procedure_and_leaves_the_model_exactly_as_it_was():
    model = ResidualNet()
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.normal_()
    model.train()
    model.block[1].eval()  # a mixed-mode model must come back mixed
    expected = synflow_by_mutation(model)
    params = prunable_parameters(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]

    got = scores.synflow(model, params, ScoreContext(torch.device("cpu"), input_shape=SHAPE))

    for g, e in zip(got, expected):
        assert g.dtype == torch.float64
        torch.testing.assert_close(g, e, rtol=1e-10, atol=0)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) and after[k].dtype == v.dtype for k, v in state.items())
    assert [m.training for m in model.modules()] == flags


def test_synflow_restores_the_cached_weight_of_pruned_layers():
    model = ResidualNet()
    params = prunable_parameters(model)
    METHODS["random"].prune(model, params, sparsity=0.5)
    scores.synflow(model, params, ScoreContext(torch.device("cpu"), input_shape=SHAPE))
    for module, _ in params:
        assert module.weight.dtype == torch.float32
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)


def test_synflow_conserves_the_synaptic_flow_through_every_layer_of_a_linear_chain():
    chain = nn.Sequential(nn.Linear(20, 30, bias=False), nn.Linear(30, 25, bias=False), nn.Linear(25, 10, bias=False))
    params = prunable_parameters(chain)
    got = scores.synflow(chain, params, ScoreContext(torch.device("cpu"), input_shape=(20,)))
    # R = 1^T |W3| |W2| |W1| 1, and every layer's scores sum to R.
    path_sum = torch.ones(1, 20, dtype=torch.float64)
    for module, _ in params:
        path_sum = path_sum @ module.weight.double().abs().T
    for layer in got:
        assert layer.sum().item() == pytest.approx(path_sum.sum().item(), rel=1e-6)


def test_iterated_synflow_avoids_the_layer_collapse_of_magnitude_pruning():
    magnitude_model, synflow_model = lenet300(), lenet300()
    synflow_model.load_state_dict(magnitude_model.state_dict())
    for model, method in ((magnitude_model, "magnitude"), (synflow_model, "synflow")):
        METHODS[method].prune(model, prunable_parameters(model), compression=1000, input_shape=(1, 28, 28))
    assert min(int(m.sum()) for m in current_masks(prunable_parameters(magnitude_model))) == 0
    assert min(int(m.sum()) for m in current_masks(prunable_parameters(synflow_model))) > 0


def test_snip_is_the_magnitude_of_weight_times_summed_gradient():
    model = ResidualNet()
    data = batches()
    reference = copy.deepcopy(model).eval()
    for inputs, targets in data:
        F.cross_entropy(reference(inputs), targets).backward()
    expected = [(m.weight * m.weight.grad).abs() for m, _ in prunable_parameters(reference)]

    model.train()
    got = scores.snip(model, prunable_parameters(model), ScoreContext(torch.device("cpu"), data=data))

    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_grasp_is_weight_times_hessian_gradient_product():
    model = small_mlp()
    data = batches((48,), classes=5)
    params = prunable_parameters(model)
    names = [f"{i}.weight" for i in (1, 3, 5)]
    weights = {k: v for k, v in model.named_parameters() if k in names}

    def loss(w: dict[str, torch.Tensor], inputs, targets) -> torch.Tensor:
        logits = torch.func.functional_call(model, w, (inputs,))
        return F.cross_entropy(logits / scores.GRASP_TEMPERATURE, targets)

    def total_loss(w):
        return sum(loss(w, x, y) for x, y in data)

    g = torch.func.grad(total_loss)(weights)
    _, hg = torch.func.jvp(torch.func.grad(total_loss), (weights,), (g,))  # H g (H symmetric)

    got = scores.grasp(model, params, ScoreContext(torch.device("cpu"), data=data))

    for k, score in zip(names, got):
        torch.testing.assert_close(score, weights[k].detach() * hg[k], rtol=1e-4, atol=1e-12)
    assert any((s < 0).any() for s in got)  # signed: low scores are pruned first


def test_random_scores_are_seeded():
    model = small_mlp()
    params = prunable_parameters(model)
    cpu = torch.device("cpu")
    one, two, other = (scores.random(model, params, ScoreContext(cpu, seed=s)) for s in (3, 3, 4))
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert not torch.equal(one[0], other[0])


def test_a_registered_score_is_used_by_prune():
    def smallest_first(model, params, ctx):
        return [-effective_weight(m, n).detach().abs() for m, n in params]

    register_method("test_smallest_first", smallest_first, data_free=True, default_iterations=2)
    try:
        model = small_mlp()
        params = prunable_parameters(model)
        weights = torch.cat([m.weight.detach().abs().flatten() for m, _ in params])
        METHODS["test_smallest_first"].prune(model, params, sparsity=0.5)
        kept = torch.cat([m.weight_orig.detach().abs().flatten()[m.weight_mask.flatten() > 0] for m, _ in params])
        assert kept.max() <= weights.median()
    finally:
        del METHODS["test_smallest_first"]


# --- masks and checkpoints ----------------------------------------------------------


def test_checkpoints_use_the_prune_format_and_make_permanent_folds_it():
    model = ResidualNet().eval()
    params = prunable_parameters(model)
    METHODS["magnitude"].prune(model, params, sparsity=0.9)
    keys = model.state_dict().keys()
    for name in ("stem.0", "block.0", "block.3", "down", "head"):
        assert {f"{name}.weight_orig", f"{name}.weight_mask"} <= keys
        assert f"{name}.weight" not in keys
    x = torch.randn(2, *SHAPE)
    before, left = model(x), remaining(params)

    make_permanent(model)

    keys = model.state_dict().keys()
    assert not any(k.endswith(("_orig", "_mask")) for k in keys)
    assert not prune.is_pruned(model)
    assert remaining(params) == left
    torch.testing.assert_close(model(x), before)


def test_reapplying_masks_intersects_them_in_one_hook():
    layer = nn.Linear(4, 3)
    params = [(layer, "weight")]
    first = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    second = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    apply_masks(params, [first])
    apply_masks(params, [second])
    assert torch.equal(current_masks(params)[0], first & second)
    assert torch.equal(layer.weight, layer.weight_orig * (first & second))
    hooks = [h for h in layer._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
    assert len(hooks) == 1 and not isinstance(hooks[0], prune.PruningContainer)


def test_effective_weight_is_recomputed_not_read_from_the_cache():
    layer = nn.Linear(4, 3)
    mask = torch.rand(3, 4) > 0.5
    apply_masks([(layer, "weight")], [mask])
    with torch.no_grad():
        layer.weight_orig.add_(1.0)
    torch.testing.assert_close(effective_weight(layer, "weight"), layer.weight_orig * mask)


def test_prunable_parameters_are_linear_and_conv_weights_in_module_order():
    model = ResidualNet()
    modules = [m for m, _ in prunable_parameters(model)]
    assert modules == [model.stem[0], model.block[0], model.block[3], model.down, model.head]
    inner = [m for m, _ in prunable_parameters(model, include_first=False, include_last=False)]
    assert inner == modules[1:-1]
    transposed = nn.Sequential(nn.ConvTranspose2d(2, 3, 2), nn.Conv1d(3, 3, 1))
    assert len(prunable_parameters(transposed)) == 2


# --- iterative magnitude pruning ----------------------------------------------------


def sgd_steps(model: nn.Module) -> None:
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for inputs, targets in batches((48,), classes=5):
        optimiser.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimiser.step()


def test_iterative_magnitude_rewinds_the_kept_weights_and_hits_the_target():
    model = small_mlp()
    params = prunable_parameters(model)
    rewind = copy.deepcopy(model.state_dict())
    calls = []

    masks = iterative_magnitude(
        model, params, lambda m: (calls.append(1), sgd_steps(m)), rounds=3, sparsity=0.8, rewind_state=rewind
    )

    assert len(calls) == 3
    assert mask_count(params) == total_weights(params) - round(0.8 * total_weights(params))
    for (module, _), mask, key in zip(params, masks, ("1", "3", "5")):
        torch.testing.assert_close(module.weight_orig * mask, rewind[f"{key}.weight"] * mask)
        torch.testing.assert_close(module.weight, rewind[f"{key}.weight"] * mask)
        torch.testing.assert_close(module.bias, rewind[f"{key}.bias"])


def test_rewinding_to_a_pruned_state_restores_values_but_never_masks():
    model = small_mlp()
    params = prunable_parameters(model)
    METHODS["random"].prune(model, params, sparsity=0.5)
    rewind = copy.deepcopy(model.state_dict())  # w_orig and the 50% masks
    iterative_magnitude(model, params, sgd_steps, rounds=2, sparsity=0.9, rewind_state=rewind)
    assert mask_count(params) == total_weights(params) - round(0.9 * total_weights(params))
    torch.testing.assert_close(params[0][0].weight_orig, rewind["1.weight_orig"])


def test_iterative_magnitude_without_rewind_keeps_the_trained_weights():
    model = small_mlp()
    params = prunable_parameters(model)
    start = params[0][0].weight.detach().clone()
    iterative_magnitude(model, params, sgd_steps, rounds=2, compression=4)
    assert remaining(params) == round(total_weights(params) / 4)
    assert not torch.equal(params[0][0].weight_orig, start)


# --- errors -------------------------------------------------------------------------


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(NetgraphError, match="synflow"):
        METHODS["obd"]


@pytest.mark.parametrize(
    "target",
    [{"sparsity": 1.0}, {"sparsity": -0.1}, {"compression": 0.5}, {"compression": float("nan")}, {},
     {"sparsity": 0.5, "compression": 2}, {"compression": 1e9}],
)
def test_bad_targets_are_rejected_before_pruning(target):
    model = small_mlp()
    params = prunable_parameters(model)
    with pytest.raises(NetgraphError):
        METHODS["magnitude"].prune(model, params, **target)
    assert not prune.is_pruned(model)


@pytest.mark.parametrize(
    "method, kwargs, message",
    [
        ("snip", {}, "needs data"),
        ("grasp", {"data": iter([])}, "no data batches"),
        ("synflow", {}, "input shape"),
        ("magnitude", {"scope": "per-layer"}, "scope"),
        ("connect", {"scope": "per-layer", "input_shape": (48,)}, "scope"),
        ("magnitude", {"schedule": "cosine", "iterations": 2}, "schedule"),
        ("magnitude", {"iterations": 0}, "iterations"),
    ],
)
def test_bad_options_are_user_errors(method, kwargs, message):
    model = small_mlp()
    with pytest.raises(NetgraphError, match=message):
        METHODS[method].prune(model, prunable_parameters(model), sparsity=0.5, **kwargs)
    assert not prune.is_pruned(model)  # refused before anything was touched


def test_pruning_to_a_denser_target_than_the_model_is_an_error():
    model = small_mlp()
    params = prunable_parameters(model)
    METHODS["magnitude"].prune(model, params, sparsity=0.9)
    with pytest.raises(NetgraphError, match="never revives"):
        METHODS["magnitude"].prune(model, params, sparsity=0.5)


def test_other_user_errors():
    with pytest.raises(NetgraphError, match="already registered"):
        register_method("magnitude", scores.magnitude, data_free=True)
    with pytest.raises(NetgraphError, match="no Linear or conv"):
        prunable_parameters(nn.Sequential(nn.ReLU()))
    with pytest.raises(NetgraphError, match="does not fit"):
        apply_masks([(nn.Linear(2, 2), "weight")], [torch.ones(3, 3, dtype=torch.bool)])
    with pytest.raises(NetgraphError, match="NaN"):
        select_mask([torch.tensor([1.0, float("nan")])], 1)
