"""CoNNect holds the five properties of DESIGN.md section 3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from netgraph.connect.regularizer import CoNNect, DisconnectedWarning
from netgraph.connect.scores import connect_scores, score_flows
from netgraph.connectivity.propagate import flows, log_phi_from_inputs
from netgraph.pruning import METHODS, prunable_parameters
from netgraph.pruning.scores import ScoreContext
from netgraph.graph.tracer import trace
from netgraph.training.models import build_model


def mlp(widths: list[int], seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).double()


def linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def log_chain_product(net: nn.Module) -> float:
    """log(1^T |W_L| ... |W_1| 1), renormalising as it goes so deep chains stay finite."""
    layers = linears(net)
    vector = torch.ones(layers[0].in_features, dtype=torch.float64)
    log_scale = 0.0
    for layer in layers:
        vector = layer.weight.detach().abs().double() @ vector
        peak = float(vector.max())
        vector = vector / peak
        log_scale += math.log(peak)
    return math.log(float(vector.sum())) + log_scale


class SkipNet(nn.Module):
    """A small CNN with a grouped conv, BatchNorm and a three-way residual join."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.branch = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.side = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.branch(x) + self.side(x)
        return self.head(x.mean((2, 3)))


def skipnet() -> SkipNet:
    torch.manual_seed(1)
    net = SkipNet().double().eval()
    with torch.no_grad():
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
    return net


# -- property 5: raw mode is the scipy phi and SynFlow's R ------------------------------


def test_raw_mode_equals_weight_product_and_scipy_phi() -> None:
    net = mlp([6, 9, 5, 3])
    raw = CoNNect(net, input_shape=(6,), normalize=False)
    assert -float(raw().detach()) == pytest.approx(log_chain_product(net), rel=1e-12)
    cnn = skipnet()
    graph = trace(cnn, input_shape=(3, 6, 6))
    assert -float(CoNNect(graph, normalize=False)().detach()) == pytest.approx(flows(graph).log_phi, rel=1e-10)


# -- property 1: finite however deep, +inf exactly when disconnected --------------------


@pytest.mark.parametrize("scale", [30.0, 0.01])
def test_finite_on_a_1000_layer_chain(scale: float) -> None:
    net = mlp([4] * 1001)
    with torch.no_grad():
        for layer in linears(net):
            layer.weight.mul_(scale)
    raw = CoNNect(net, input_shape=(4,), normalize=False)().detach()
    assert math.isfinite(float(raw))
    assert -float(raw) == pytest.approx(log_chain_product(net), rel=1e-9)
    assert abs(float(raw)) > 700  # beyond float64's exp range: only the log domain gets here
    normalised = CoNNect(net, input_shape=(4,))()
    assert torch.isfinite(normalised)


def test_infinite_exactly_when_disconnected_and_never_nan() -> None:
    net = mlp([5, 6, 4])
    reg = CoNNect(net, input_shape=(5,))
    with torch.no_grad():
        net[0].weight[:, :] = 0
        net[0].weight[2, 3] = 1.0  # a single thread keeps it connected
    assert torch.isfinite(reg())
    with torch.no_grad():
        net[2].weight[:, 2] = 0  # ...now cut
    with pytest.warns(DisconnectedWarning):
        value = reg()
    assert value.item() == math.inf and not value.requires_grad
    assert flows(reg.graph).disconnected


def test_training_step_on_a_disconnected_net_keeps_weights_finite() -> None:
    from netgraph.training.engine import TrainConfig, train

    net = mlp([4, 8, 3]).float()
    with torch.no_grad():
        net[2].weight.zero_()
    reg = CoNNect(net, input_shape=(4,))
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    config = TrainConfig(epochs=2, optimizer="sgd", lr=0.1, lambda_r=1.0)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.warns(RuntimeWarning, match="regularizer is not finite") as caught:
        train(net, loader, loader, config, regularizer=reg, progress=False)
    assert any(issubclass(w.category, DisconnectedWarning) for w in caught)  # R = +inf was reported
    assert all(torch.isfinite(p).all() for p in net.parameters())
    # R was dropped from those steps, the task loss still trained the net
    assert not torch.equal(before[0], net[0].weight.detach())


# -- property 2: invariance to rescaling a layer ----------------------------------------


def test_rescaling_a_layer_leaves_r_unchanged() -> None:
    net = build_model("resnet20").double().eval()
    reg = CoNNect(net, input_shape=(3, 32, 32))
    before = float(reg().detach())
    with torch.no_grad():
        net.stages[4].conv1.weight.mul_(17.0)
        net.fc.weight.mul_(0.03)
        net.stem[0].weight.mul_(5.0)
    assert float(reg().detach()) == pytest.approx(before, rel=1e-12)
    raw = CoNNect(net, input_shape=(3, 32, 32), normalize=False)
    assert math.isfinite(float(raw().detach()))


# -- property 3: gradient of dead weights, gradients vs finite differences --------------


def test_dead_weight_gradient_in_a_chain_is_one_over_layer_mass() -> None:
    net = mlp([5, 7, 4, 3])
    with torch.no_grad():
        net[2].weight[:, 0] = 0  # unit 0 of the first hidden layer reaches no output
    reg = CoNNect(net, input_shape=(5,))
    reg().backward()
    weight = net[0].weight
    expected = 1.0 / float(weight.detach().abs().sum())
    on_magnitude = (weight.grad * weight.detach().sign())[0]
    assert torch.allclose(on_magnitude, torch.full_like(on_magnitude, expected), rtol=1e-10)
    alive_grad = (weight.grad * weight.detach().sign())[1:]
    assert not torch.allclose(alive_grad, torch.full_like(alive_grad, expected))


def normalised_copy(net: nn.Module) -> nn.Module:
    """The model whose raw weights are CoNNect's A~: every layer rescaled to mass
    min(n_in, n_out), norm layers made identities. Its scipy flows are CoNNect's."""
    import copy

    clone = copy.deepcopy(net)
    graph = trace(clone, input_shape=(3, 6, 6))
    with torch.no_grad():
        for block in graph.param_blocks():
            weight = block.source.module.weight
            weight.mul_(min(len(block.src), block.n_out) / float(weight.abs().sum()))
        for module in clone.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.running_var.fill_(1.0 - module.eps)
    return clone


def test_dead_weight_gradient_with_skips_is_share_over_layer_mass() -> None:
    net = skipnet()
    with torch.no_grad():
        net.head.weight[:, 5] = 0  # channel 5 of the joined map reaches no output
    reg = CoNNect(net, input_shape=(3, 6, 6))
    reg().backward()
    normalised = trace(normalised_copy(net), input_shape=(3, 6, 6))
    assert -float(reg().detach()) == pytest.approx(flows(normalised).log_phi, rel=1e-10)
    block = next(b for b in normalised.param_blocks() if b.name == "side")
    share = float(flows(normalised).centrality()[block.dst.nodes].sum())
    assert 0.0 < share < 1.0
    weight = net.side.weight
    dead_rows = (weight.grad * weight.detach().sign())[5]
    assert torch.allclose(dead_rows, torch.full_like(dead_rows, share / float(weight.detach().abs().sum())), rtol=1e-8)


@pytest.mark.parametrize("structured", [False, True])
def test_gradients_match_finite_differences(structured: bool) -> None:
    net = skipnet()
    reg = CoNNect(net, input_shape=(3, 6, 6), structured=structured, gates=structured)
    reg().backward()
    generator = torch.Generator().manual_seed(0)
    checked = [net.stem.weight, net.branch.weight, net.head.weight]
    if structured:
        checked.append(net.bn.weight)  # BN scales are node gates only in the structured variant
    else:
        assert net.bn.weight.grad is None  # unstructured: norm layers are identities
    for param in checked:
        for _ in range(3):
            index = tuple(int(torch.randint(0, n, (1,), generator=generator)) for n in param.shape)
            analytic = float(param.grad[index])
            with torch.no_grad():
                original = float(param[index])
                param[index] = original + 1e-6
                plus = float(reg().detach())
                param[index] = original - 1e-6
                minus = float(reg().detach())
                param[index] = original
            assert analytic == pytest.approx((plus - minus) / 2e-6, rel=1e-4, abs=1e-8)


# -- property 4: minimisers are aligned single paths --------------------------------------


def test_single_aligned_path_beats_dense_and_random_sparse() -> None:
    widths = [6, 6, 6, 6]
    single = mlp(widths)
    with torch.no_grad():
        for layer in linears(single):
            layer.weight.zero_()
            layer.weight[2, 2] = 0.7
    r_single = float(CoNNect(single, input_shape=(6,))().detach())
    assert r_single == pytest.approx(-3 * math.log(6), rel=1e-12)  # phi = m^L with m = 6
    dense = mlp(widths)
    assert r_single < float(CoNNect(dense, input_shape=(6,))().detach())
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        sparse = mlp(widths)
        with torch.no_grad():
            for layer in linears(sparse):
                layer.weight.mul_((torch.rand(layer.weight.shape, generator=generator) < 0.3).double())
                layer.weight[2, 2] = 1.0
        assert r_single <= float(CoNNect(sparse, input_shape=(6,))().detach()) + 1e-12


def test_descent_on_r_concentrates_mass_on_few_paths() -> None:
    net = mlp([8, 8, 8, 4], seed=2)
    reg = CoNNect(net, input_shape=(8,))
    params = [layer.weight for layer in linears(net)]

    def entropy(w: torch.Tensor) -> float:
        p = w.detach().abs().flatten() / w.detach().abs().sum()
        return float(-(p * torch.log(p.clamp_min(1e-300))).sum())

    before = [entropy(w) for w in params]
    r_before = float(reg().detach())
    optimizer = torch.optim.Adam(params, lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        reg().backward()
        optimizer.step()
        with torch.no_grad():  # fixed per-layer mass: project back after each step
            for w, mass in zip(params, (8.0 * 8, 8.0 * 8, 8.0 * 4)):
                w.mul_(mass / w.abs().sum())
    after = [entropy(w) for w in params]
    assert float(reg().detach()) < r_before - 0.5
    assert all(a < b - 0.3 for a, b in zip(after, before))


# -- scores --------------------------------------------------------------------------------


def test_connect_score_is_path_mass_share_and_sums_to_one_per_chain_layer() -> None:
    net = mlp([5, 7, 4, 3])
    graph = trace(net, input_shape=(5,))
    scores = connect_scores(graph, flows(graph))
    for key, score in scores.items():
        assert float(score.sum()) == pytest.approx(1.0, rel=1e-10), key
    # SynFlow's score |w * dR/dw| with R = 1^T prod |W| 1 is the same quantity times phi
    weights = [layer.weight.detach().abs().requires_grad_(True) for layer in linears(net)]
    vector = torch.ones(5, dtype=torch.float64)
    for w in weights:
        vector = w @ vector
    phi = vector.sum()
    phi.backward()
    synflow = (weights[1] * weights[1].grad / phi).detach()
    assert torch.allclose(scores["2.weight"], synflow, rtol=1e-10)


def test_connect_score_of_a_disconnected_net_is_zero() -> None:
    net = mlp([4, 5, 3])
    with torch.no_grad():
        net[2].weight.zero_()
    graph = trace(net, input_shape=(4,))
    assert all(float(s.abs().sum()) == 0.0 for s in connect_scores(graph, flows(graph)).values())
    assert np.isneginf(flows(graph).log_phi)


def test_normalised_scipy_flows_are_connects_graph() -> None:
    """``flows(graph, normalize=True)`` propagates the same ``A~`` as the regularizer:
    its log phi is ``-R`` (float64), on a ResNet with parallel branches and BN."""
    net = build_model("resnet20").double().eval()
    graph = trace(net, input_shape=(3, 32, 32))
    assert flows(graph, normalize=True).log_phi == pytest.approx(-float(CoNNect(graph)().detach()), rel=1e-10)


def test_the_normalised_score_keeps_the_projection_shortcuts_their_share() -> None:
    """Raw path shares give a ResNet's 1x1 projection shortcut a tiny share of the mass
    (it crosses one conv where the parallel branch crosses two), so SynFlow-like raw
    scores prune it first; in ``A~`` each block carries a comparable mass."""
    net = build_model("resnet20").eval()
    graph = trace(net, input_shape=(3, 32, 32))
    raw, normalised = connect_scores(graph, flows(graph)), connect_scores(graph, flows(graph, normalize=True))
    shortcut, branch = "stages.3.shortcut.0.weight", "stages.3.conv2.weight"  # the first projection block

    def mean_share(scores: dict, key: str) -> float:
        return float(scores[key].sum() / scores[key].numel())

    ratio_raw = mean_share(raw, shortcut) / mean_share(raw, branch)
    ratio_normalised = mean_share(normalised, shortcut) / mean_share(normalised, branch)
    assert ratio_normalised > 10 * ratio_raw


class ResidualMLP(nn.Module):
    """``out(b2(b1(h)) + s(h))`` with ``h = a(x)``: a two-layer branch beside a one-layer
    shortcut, no biases (so SynFlow is exactly the raw path mass)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b1, self.b2 = nn.Linear(4, 6, bias=False), nn.Linear(6, 5, bias=False), nn.Linear(5, 6, bias=False)
        self.s, self.out = nn.Linear(6, 6, bias=False), nn.Linear(6, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.out(self.b2(torch.relu(self.b1(h))) + self.s(h))


def balanced_scores_by_hand(net: ResidualMLP) -> dict[str, np.ndarray]:
    """The score's graph written out: each layer ``|W| m / ||W||_1``; at the add each branch
    scaled by ``c_i = (S_1 + S_2) / 2 / S_i`` (``S_i`` its delivered forward mass);
    share ``F_u A_uv B_v / phi``."""
    def tilde(layer: nn.Linear) -> np.ndarray:
        w = layer.weight.detach().double().abs().numpy()
        return w * min(w.shape) / w.sum()

    a, b1, b2, s, out = (tilde(layer) for layer in (net.a, net.b1, net.b2, net.s, net.out))
    h = a @ np.ones(4)
    u, v = b2 @ (b1 @ h), s @ h
    c_u, c_v = (u.sum() + v.sum()) / 2 / u.sum(), (u.sum() + v.sum()) / 2 / v.sum()
    join = c_u * u + c_v * v
    phi = (out @ join).sum()
    b_join = out.T @ np.ones(3)
    b_mid = b2.T @ (c_u * b_join)
    b_h = b1.T @ b_mid + s.T @ (c_v * b_join)

    def share(f_in: np.ndarray, matrix: np.ndarray, b_out: np.ndarray) -> np.ndarray:
        return b_out[:, None] * matrix * f_in[None, :] / phi

    return {"a.weight": share(np.ones(4), a, b_h), "b1.weight": share(h, b1, b_mid),
            "b2.weight": share(b1 @ h, b2, c_u * b_join), "s.weight": share(h, s, c_v * b_join),
            "out.weight": share(join, out, np.ones(3))}


def test_the_score_balances_the_branches_at_a_join_as_computed_by_hand() -> None:
    net = ResidualMLP()
    graph = trace(net, input_shape=(4,))
    scores = connect_scores(graph, score_flows(graph))
    expected = balanced_scores_by_hand(net)
    assert set(scores) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(scores[key].numpy(), value, rtol=1e-10, err_msg=key)
    # path-mass shares: every cut of the graph carries all of it
    for cut in (["a.weight"], ["b1.weight", "s.weight"], ["b2.weight", "s.weight"], ["out.weight"]):
        assert sum(float(scores[k].sum()) for k in cut) == pytest.approx(1.0, rel=1e-10)
    # and the unbalanced A~ gives the two-layer branch more than the balanced graph does
    plain = connect_scores(graph, flows(graph, normalize=True))
    assert not np.allclose(plain["s.weight"].numpy(), expected["s.weight"], rtol=1e-3)


def test_balanced_joins_change_nothing_in_a_chain() -> None:
    """LeNet-5 (convs, a flatten that merges spatial features, Linear layers): no join, so
    the score's flows are exactly the ``A~`` flows, bit for bit."""
    graph = trace(build_model("lenet5").eval(), input_shape=(1, 28, 28))
    balanced, plain = score_flows(graph), flows(graph, normalize=True)
    assert balanced.balanced and not plain.balanced
    assert np.array_equal(balanced.log_forward, plain.log_forward)
    assert np.array_equal(balanced.log_backward, plain.log_backward)
    assert balanced.log_phi == plain.log_phi


def test_balanced_flows_stay_a_graph() -> None:
    """ResNet-20 pruned to 10%: the backward sweep reads the same join factors as the
    forward one (``sum_in B = sum_out F``), and the regulariser keeps the unbalanced ``A~``."""
    net = build_model("resnet20").double().eval()
    METHODS["random"].prune(net, prunable_parameters(net), sparsity=0.9, seed=0)
    graph = trace(net, input_shape=(3, 32, 32))
    balanced = score_flows(graph)
    assert log_phi_from_inputs(balanced) == pytest.approx(balanced.log_phi, rel=1e-10)
    assert flows(graph, normalize=True).log_phi == pytest.approx(-float(CoNNect(graph)().detach()), rel=1e-10)


def test_synflow_stays_the_raw_path_mass() -> None:
    """SynFlow is ``|w dR/dw|`` on the raw graph: the raw path shares times phi. Balancing
    changed CoNNect's graph (the shortcut's share) and nothing of SynFlow's."""
    net = ResidualMLP()
    with torch.no_grad():
        net.s.weight *= 10  # SynFlow reads magnitudes; A~ is blind to a layer's scale
    graph = trace(net, input_shape=(4,))
    raw = flows(graph)
    params = [(getattr(net, name), "weight") for name in ("a", "b1", "b2", "s", "out")]
    synflow = METHODS["synflow"].score(net, params, ScoreContext(device=torch.device("cpu"), input_shape=(4,)))
    shares = connect_scores(graph, raw)
    balanced = connect_scores(graph, score_flows(graph))
    for name, score in zip(("a", "b1", "b2", "s", "out"), synflow):
        torch.testing.assert_close(score, shares[f"{name}.weight"] * math.exp(raw.log_phi), rtol=1e-10, atol=0)
    shortcut = float(synflow[3].sum() / synflow[4].sum())  # the shortcut's share of SynFlow's paths
    assert shortcut > 0.8 and float(balanced["s.weight"].sum()) < 0.6
