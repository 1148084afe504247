"""CoNNect as a pruning score: the fast iterated loop, connectivity kept, DepGraph importance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch_pruning as tp
from structured_models import branchy
from test_pruning_torch_pruning import (
    small_cnn,  # the same small CNN as the DepGraph tests
)
from torch import nn
from torch.nn.utils import prune

from netgraph.connectivity.propagate import flows
from netgraph.connectivity.report import analyze
from netgraph.errors import NetgraphError
from netgraph.graph.tracer import trace
from netgraph.parameters import effective_weight, reuse_weights
from netgraph.pruning import (
    METHODS,
    ConnectImportance,
    path_mass,
    prunable_parameters,
    structural_prune,
)
from netgraph.pruning.masks import current_masks, select_alive
from netgraph.pruning.methods import iterate_scores
from netgraph.pruning.path_mass import _AliveWeights, _graph_and_keys, torch_threads
from netgraph.pruning.path_mass import connect_score as connect
from netgraph.pruning.schedule import keep_schedule
from netgraph.pruning.scores import ScoreContext
from netgraph.training.models import build_model

SHAPES = {"lenet300": (1, 28, 28), "lenet5": (1, 28, 28), "resnet20": (3, 32, 32)}


def plain_and_fast(model: nn.Module, shape: tuple[int, ...], params_of, keeps: list[int], scope: str):
    """Masks of the plain re-scoring loop and of the connect method's own loop on two copies
    (``model`` not yet pruned: a pruned weight is computed, and deepcopy refuses those)."""
    plain, fast = model, copy.deepcopy(model)
    for copy_ in (plain, fast):
        METHODS["random"].prune(copy_, params_of(copy_), sparsity=0.3, seed=1)  # start from a pruned model
    ctx = ScoreContext(device=torch.device("cpu"), input_shape=shape)
    plain_masks = iterate_scores(connect, plain, params_of(plain), keeps, ctx, scope)
    fast_masks = METHODS["connect"].iterate(fast, params_of(fast), keeps, ctx, scope)
    return (plain, plain_masks), (fast, fast_masks)


@pytest.mark.parametrize("name", ["lenet300", "resnet20"])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_the_fast_loop_gives_exactly_the_masks_of_rescoring_every_round(name: str, scope: str) -> None:
    model = build_model(name)
    alive = round(0.7 * sum(getattr(m, n).numel() for m, n in prunable_parameters(model)))
    keeps = keep_schedule(alive, alive // 300, 12)

    (plain, plain_masks), (fast, fast_masks) = plain_and_fast(model, SHAPES[name], prunable_parameters, keeps, scope)

    assert sum(int(m.sum()) for m in fast_masks) == keeps[-1]
    assert all(torch.equal(a, b) for a, b in zip(plain_masks, fast_masks))
    x = torch.randn(4, *SHAPES[name])
    assert torch.equal(plain.eval()(x), fast.eval()(x))  # weights synced to the masks


def separable() -> nn.Module:
    """Depthwise and two-group convs: the loop reads its edges' shares per group."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8, padding=1),
        nn.Conv2d(8, 16, 3, groups=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10),
    ).eval()


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_the_fast_loop_gives_the_plain_loops_masks_with_grouped_convs(scope: str) -> None:
    model = separable()
    alive = round(0.7 * sum(getattr(m, n).numel() for m, n in prunable_parameters(model)))
    keeps = keep_schedule(alive, alive // 100, 12)

    (_, plain_masks), (_, fast_masks) = plain_and_fast(model, (3, 8, 8), prunable_parameters, keeps, scope)

    assert sum(int(m.sum()) for m in fast_masks) == keeps[-1]
    assert all(torch.equal(a, b) for a, b in zip(plain_masks, fast_masks))


class AttentionNet(nn.Module):
    """In-projection read by three blocks (q, k, v), and a layer the forward never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)
        self.unused = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.head(self.attn(h, h, h, need_weights=False)[0].mean(1))


def attention_params(model: AttentionNet) -> list[tuple[nn.Module, str]]:
    return [(model.embed, "weight"), (model.attn, "in_proj_weight"), (model.head, "weight"), (model.unused, "weight")]


def test_layers_the_fast_loop_cannot_track_take_the_plain_loop() -> None:
    model = AttentionNet()
    keeps = keep_schedule(round(0.7 * (48 + 192 + 24 + 64)), 100, 5)

    (_, plain_masks), (fast, fast_masks) = plain_and_fast(model, (5, 6), attention_params, keeps, "global")

    assert all(torch.equal(a, b) for a, b in zip(plain_masks, fast_masks))
    assert not fast_masks[-1].any()  # the unused layer carries no path: it goes first
    assert np.isfinite(flows(trace(fast, input_shape=(5, 6))).log_phi)


@pytest.mark.parametrize(("name", "keep"), [("lenet300", 3), ("lenet300", 20), ("resnet20", 270)])
def test_connect_pruning_keeps_the_net_connected_where_magnitude_disconnects_it(name: str, keep: int) -> None:
    """Down to one weight per layer (LeNet keeps 3 of 266,200): never disconnected."""
    models = {method: build_model(name) for method in ("connect", "magnitude")}
    models["magnitude"].load_state_dict(models["connect"].state_dict())
    for method, model in models.items():
        params = prunable_parameters(model)
        total = sum(getattr(m, n).numel() for m, n in params)
        METHODS[method].prune(model, params, compression=total / keep, input_shape=SHAPES[name])
    connected = {m: bool(np.isfinite(flows(trace(model, input_shape=SHAPES[name])).log_phi)) for m, model in models.items()}
    assert connected == {"connect": True, "magnitude": False}


def test_connect_importance_removes_the_channel_no_path_uses() -> None:
    model = small_cnn().eval()
    with torch.no_grad():
        model[3].weight[:, 2] = 0.0  # channel 2 of the first conv feeds nothing
    first = model[0].weight.detach().clone()

    structural_prune(model, torch.randn(1, 3, 8, 8), 0.125, ConnectImportance(model, (3, 8, 8)))

    assert model[0].out_channels == 7
    torch.testing.assert_close(model[0].weight, first[[0, 1, 3, 4, 5, 6, 7]])
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_the_fast_loop_prunes_channels_last_models_like_contiguous_ones() -> None:
    model = small_cnn()
    twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
    masks = [
        METHODS["connect"].prune(m, prunable_parameters(m), sparsity=0.9, input_shape=(3, 8, 8), iterations=5)
        for m in (model, twin)
    ]
    assert not twin[0].weight_mask.is_contiguous()
    assert all(torch.equal(a, b) for a, b in zip(*masks))


def test_a_bad_scope_is_refused_before_the_fast_loop_touches_the_model() -> None:
    model = small_cnn()
    ctx = ScoreContext(device=torch.device("cpu"), input_shape=(3, 8, 8))
    with pytest.raises(NetgraphError, match="scope"):
        METHODS["connect"].iterate(model, prunable_parameters(model), [100], ctx, "per-layer")
    assert not prune.is_pruned(model)


def _eval_branchy() -> nn.Module:
    model = branchy().eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial eval-mode gains
            module.weight.data.uniform_(0.5, 1.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


def _phi_without(model: nn.Module, root_name: str, handler, channel: int, example: torch.Tensor) -> float:
    """Brute force: remove one channel of a group with Torch-Pruning, re-trace, recompute log phi."""
    twin = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(twin, example)
    graph.get_pruning_group(twin.get_submodule(root_name), handler, [channel]).prune()
    return flows(trace(twin, input_shape=tuple(example.shape[1:]))).log_phi


def test_connect_importance_is_the_path_mass_lost_when_a_channel_goes() -> None:
    """Every group of a net with a residual add, a concat and a flatten: one score per
    root channel, equal to (phi - phi without that channel) / phi."""
    model = _eval_branchy()
    example = torch.randn(1, 3, 8, 8)
    importance = ConnectImportance(model, (3, 8, 8))
    log_phi = flows(trace(model, input_shape=(3, 8, 8))).log_phi
    names = {module: name for name, module in model.named_modules()}
    groups = list(tp.DependencyGraph().build_dependency(model, example).get_all_groups(ignored_layers=[model.head]))
    assert {names[g[0].dep.target.module] for g in groups} == {"stem", "b", "c", "d", "e"}  # b: the residual pair

    for group in groups:
        root = group[0].dep
        scores = importance(group)
        brute = [1 - np.exp(_phi_without(model, names[root.target.module], root.handler, c, example) - log_phi)
                 for c in range(len(group[0].idxs))]
        assert scores.shape == (len(brute),)
        np.testing.assert_allclose(scores.numpy(), brute, rtol=1e-4, atol=1e-7)
    assert importance.flow_computations == 1


def test_one_flows_computation_per_pruning_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import netgraph.pruning.importance as module

    calls = []
    real = module.flows
    monkeypatch.setattr(module, "flows", lambda graph: calls.append(1) or real(graph))
    model = build_model("resnet20")
    importance = ConnectImportance(model, (3, 32, 32))

    structural_prune(model, torch.randn(1, 3, 32, 32), 0.25, importance)
    assert len(calls) == 1  # 12 groups, one computation
    structural_prune(model, torch.randn(1, 3, 32, 32), 0.25, importance)
    assert len(calls) == 2  # the model changed: computed again, once


def test_combined_importance_is_the_product_of_the_mean_normalised_scores() -> None:
    model = _eval_branchy()
    example = torch.randn(1, 3, 8, 8)
    group = next(iter(tp.DependencyGraph().build_dependency(model, example).get_all_groups(ignored_layers=[model.head])))
    base = tp.importance.GroupMagnitudeImportance()
    connect_only = ConnectImportance(model, (3, 8, 8))(group).double()
    magnitude = base(group).double()
    both = ConnectImportance(model, (3, 8, 8), base=base)(group).double()
    expected = (connect_only / connect_only.mean()) * (magnitude / magnitude.mean())
    torch.testing.assert_close(both, expected, rtol=1e-5, atol=1e-6)


def test_connect_rebuilds_its_graph_after_a_structural_step() -> None:
    from netgraph.connect.regularizer import CoNNect

    model = build_model("resnet20")
    reg = CoNNect(model, input_shape=(3, 32, 32), structured=True, gates=True)
    reg()
    structural_prune(model, torch.randn(1, 3, 32, 32), 0.5, "magnitude")  # used to raise IndexError in reg()

    after = reg()
    fresh = CoNNect(model, input_shape=(3, 32, 32), structured=True, gates=True)()
    assert torch.isfinite(after)
    torch.testing.assert_close(after, fresh)
    after.backward()
    assert model.stem[0].weight.grad is not None and model.stem[0].weight.grad.shape[0] == 8


def test_connect_built_from_a_graph_says_it_cannot_rebuild() -> None:
    from netgraph.connect.regularizer import CoNNect

    model = small_cnn()
    reg = CoNNect(trace(model, input_shape=(3, 8, 8)))
    structural_prune(model, torch.randn(1, 3, 8, 8), 0.5)
    with pytest.raises(NetgraphError, match="input_shape"):
        reg()


def pruned_at_init(name: str, seed: int, compression: float, iterations: int) -> tuple[nn.Module, list[torch.Tensor]]:
    torch.manual_seed(seed)
    model = build_model(name).eval()
    masks = METHODS["connect"].prune(model, prunable_parameters(model), compression=compression,
                                     iterations=iterations, input_shape=SHAPES[name])
    return model, masks


def unbalanced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The score as it was: CoNNect's ``A~`` without balanced joins."""
    monkeypatch.setattr(path_mass, "score_flows", lambda graph: flows(graph, normalize=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_layer_of_resnet20_collapses_up_to_1000x_projection_shortcuts_included(seed: int) -> None:
    """Every layer keeps a weight and the net stays connected at 10^3 from init (20 rounds)."""
    model, _ = pruned_at_init("resnet20", seed, 1e3, 20)
    report = analyze(trace(model, input_shape=SHAPES["resnet20"]))
    assert report.collapsed_layers == [] and not report.disconnected


def test_without_balanced_joins_the_projection_shortcuts_collapse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The case above is a real test: the ``A~`` score alone loses both 1x1 shortcuts there."""
    unbalanced(monkeypatch)
    model, _ = pruned_at_init("resnet20", 1, 1e3, 20)
    report = analyze(trace(model, input_shape=SHAPES["resnet20"]))
    assert set(report.collapsed_layers) == {"stages.3.shortcut.0.weight", "stages.6.shortcut.0.weight"}


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_chains_are_pruned_exactly_as_before_balanced_joins(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No join, nothing to balance: the masks at 10^3.5 are those of the ``A~`` score."""
    _, balanced = pruned_at_init(name, 0, 10**3.5, 20)
    unbalanced(monkeypatch)
    _, plain = pruned_at_init(name, 0, 10**3.5, 20)
    assert all(torch.equal(a, b) for a, b in zip(balanced, plain))
def test_the_loop_keeps_w_its_edge_weights_and_scores_equal_to_a_recomputation() -> None:
    """The loop's own state, round after round (rounds that only mark pruned entries and
    rounds that compact them): ``|w|`` zeroed in place equals ``|w_orig * w_mask|``, the
    edge weights the flows read from it equal the live graph's in every aggregation, and
    its scores are :func:`connect_score` on the unpruned weights and -1 on the pruned."""
    model = small_cnn()
    params = prunable_parameters(model)
    METHODS["random"].prune(model, params, sparsity=0.3, seed=1)
    ctx = ScoreContext(device=torch.device("cpu"), input_shape=(3, 8, 8))
    graph, keys = _graph_and_keys(model, params, ctx)
    blocks = [graph.layers()[key][0] for key in keys]
    alive = _AliveWeights(graph, params, blocks)
    sizes = [getattr(m, n).numel() for m, n in params]
    lengths = []
    for keep in keep_schedule(sum(alive.counts), 30, 16):
        with torch.no_grad(), reuse_weights():
            scores = alive.scores(flows(alive.graph, normalize=True))
        expected = [s[m] for s, m in zip(connect(model, params, ctx), current_masks(params))]
        unpruned = alive.edge != len(alive.share) - 1
        assert torch.equal(scores[unpruned], torch.cat(expected))
        assert (scores[~unpruned] == -1).all()
        alive.keep_only(select_alive([scores], keep, "global", sizes, alive=alive.counts)[0])
        lengths.append(len(alive.edge))
        assert alive.counts == [int(m.sum()) for m in current_masks(params)]
        for weight, reader, block, (module, name) in zip(alive.weights, alive.blocks, blocks, params):
            assert torch.equal(weight, effective_weight(module, name).detach().abs())
            for how in ("l1", "l2", "count"):
                assert torch.equal(reader.source.grouped(how), block.source.grouped(how))
    assert sum(alive.counts) == 30
    assert any(n > sum(alive.counts) for n in lengths[:-1])  # some rounds carried marked entries
    assert len(set(lengths)) > 2  # and some compacted them


def test_the_loop_runs_on_one_thread_and_gives_the_callers_setting_back() -> None:
    model = small_cnn()
    threads = torch.get_num_threads()
    seen = []

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return select_alive(*args, **kwargs)

    try:
        torch.set_num_threads(2)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(path_mass, "select_alive", spy)
            METHODS["connect"].prune(model, prunable_parameters(model), sparsity=0.9, input_shape=(3, 8, 8), iterations=3)
        assert seen == [1, 1, 1]
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_the_fast_loop_gives_the_plain_loops_masks_at_two_threads() -> None:
    """The loop runs on one thread whatever the caller set: its masks must not depend on it."""
    threads = torch.get_num_threads()
    model = build_model("lenet300")
    alive = round(0.7 * sum(getattr(m, n).numel() for m, n in prunable_parameters(model)))
    try:
        torch.set_num_threads(2)
        (_, plain_masks), (_, fast_masks) = plain_and_fast(
            model, SHAPES["lenet300"], prunable_parameters, keep_schedule(alive, alive // 100, 6), "global"
        )
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(plain_masks, fast_masks))
