"""Tracing (DESIGN.md section 1): node mapping through data movement, masks, torchvision models."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize, prune

from netgraph.connectivity.propagate import flows
from netgraph.connectivity.report import alive_weight_masks, analyze
from netgraph.errors import TraceError
from netgraph.graph.tracer import trace

pytestmark = pytest.mark.usefixtures("one_thread")


def block(graph, name: str):
    (found,) = [b for b in graph.blocks if b.name == name]
    return found


def pairs(b) -> list[tuple[int, int]]:
    """``(input channel, node)`` pairs of a block, sorted."""
    return sorted(zip(b.in_chan.tolist(), b.in_node.tolist()))


# ---------------------------------------------------------------- index-probe mapping


class FlattenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 5, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv(x), 1))


def test_flatten_after_conv_maps_each_channel_to_its_features() -> None:
    torch.manual_seed(0)
    model = FlattenNet()
    graph = trace(model, input_shape=(2, 4, 5))
    conv, fc = block(graph, "conv"), block(graph, "fc")
    hw = 4 * 5
    # Feature f = c * H * W + p of the flattened map comes from conv channel c.
    assert pairs(fc) == [(f, int(conv.dst.nodes[f // hw])) for f in range(3 * hw)]
    assert list(fc.src) == list(conv.dst.nodes)
    # One edge per (channel, unit): the sum of |W| over that channel's features.
    w = model.fc.weight.detach().abs().double()
    expected = w.reshape(6, 3, hw).sum(-1).numpy()
    assert np.allclose(fc.matrix().toarray(), expected)
    # Edges are channel-level: 3 x 6 for the Linear, not one per flattened feature.
    assert (conv.n_edges, fc.n_edges, graph.n_edges()) == (6, 18, 24)


@pytest.mark.parametrize("dead", [0, 1, 2])
def test_dead_conv_channel_kills_exactly_its_linear_columns(dead: int) -> None:
    torch.manual_seed(dead)
    model = FlattenNet()
    with torch.no_grad():
        model.conv.weight[dead] = 0
        model.conv.bias[dead] = 0
    graph = trace(model, input_shape=(2, 4, 5))
    masks = alive_weight_masks(graph, flows(graph))
    hw = 4 * 5
    expected = torch.ones(6, 3 * hw, dtype=torch.bool)
    expected[:, dead * hw:(dead + 1) * hw] = False
    assert torch.equal(masks["fc.weight"], expected)
    report = analyze(graph)
    fc = next(layer for layer in report.layers if layer.name == "fc.weight")
    assert (fc.dead, fc.alive, fc.in_alive, fc.in_width) == (6 * hw, 6 * 2 * hw, 2 * hw, 3 * hw)
    conv = next(layer for layer in report.layers if layer.name == "conv.weight")
    assert (conv.out_alive, conv.dead) == (2, 0)


class ShuffleNetStyle(nn.Module):
    """torchvision's shufflenet channel_shuffle: view, transpose, view."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.c1 = nn.Conv2d(2, 6, 1)
        self.c2 = nn.Conv2d(6, 6, 1, groups=6)
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(x)
        if self.how == "view":
            b, c, h, w = x.size()
            x = x.view(b, 2, c // 2, h, w)
            x = torch.transpose(x, 1, 2).contiguous()
            x = x.view(b, -1, h, w)
        elif self.how == "module":
            x = self.shuffle(x)
        else:
            x = torch.channel_shuffle(x, 2)
        return self.c2(x)


@pytest.mark.parametrize("how", ["view", "module", "function"])
def test_channel_shuffle_permutes_channels(how: str) -> None:
    graph = trace(ShuffleNetStyle(how), input_shape=(2, 3, 3))
    c1, c2 = block(graph, "c1").dst.nodes, block(graph, "c2")
    # groups=2 over 6 channels: new channel order 0, 3, 1, 4, 2, 5.
    assert pairs(c2) == [(j, int(c1[src])) for j, src in enumerate([0, 3, 1, 4, 2, 5])]


class PixelShuffleNet(nn.Module):
    def __init__(self, unshuffle: bool) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        self.c1 = nn.Conv2d(1, 2 if unshuffle else 8, 1)
        self.move = nn.PixelUnshuffle(2) if unshuffle else nn.PixelShuffle(2)
        self.c2 = nn.Conv2d(8 if unshuffle else 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.move(self.c1(x)))


def test_pixel_shuffle_feeds_each_channel_from_its_r2_sources() -> None:
    graph = trace(PixelShuffleNet(unshuffle=False), input_shape=(1, 4, 4))
    c1, c2 = block(graph, "c1").dst.nodes, block(graph, "c2")
    # Output channel c of PixelShuffle(2) holds input channels 4c .. 4c+3 at its 2x2 positions.
    assert pairs(c2) == [(c, int(c1[4 * c + k])) for c in range(2) for k in range(4)]
    m = c2.matrix().toarray()
    w = c2.source.grouped().detach().double().numpy()
    assert m.shape == (3, 8)
    assert np.allclose(m, np.repeat(w, 4, axis=1))
    assert c2.n_edges == 3 * 8 == c2.matrix().nnz


def test_pixel_unshuffle_spreads_each_channel_over_r2_channels() -> None:
    graph = trace(PixelShuffleNet(unshuffle=True), input_shape=(1, 4, 4))
    c1, c2 = block(graph, "c1").dst.nodes, block(graph, "c2")
    assert pairs(c2) == [(4 * c + k, int(c1[c])) for c in range(2) for k in range(4)]


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveMaxPool2d(1), nn.LPPool2d(2, 2)])
def test_pooling_across_different_nodes_is_refused_not_guessed(pool: nn.Module) -> None:
    """After a pixel shuffle each 2x2 window holds four different nodes: a max pool must
    not silently keep one of them (that would report the other three as dead)."""
    model = nn.Sequential(nn.Conv2d(1, 8, 1), nn.PixelShuffle(2), pool, nn.Conv2d(2, 1, 1))
    with pytest.raises(TraceError, match="mixes channels"):
        trace(model, input_shape=(1, 2, 2))
    # Ops that keep each element's node are fine on the same maps.
    for keep in (nn.MaxPool2d(1), nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.ZeroPad2d(1)):
        model = nn.Sequential(nn.Conv2d(1, 8, 1), nn.PixelShuffle(2), keep, nn.Conv2d(2, 1, 1))
        report = analyze(trace(model, input_shape=(1, 2, 2)))
        assert report.dead == 0 and report.alive == 8 + 2


def test_reductions_skip_elements_without_a_node() -> None:
    """A constant token (a class token parameter) has no node: averaging it with the
    real tokens keeps each channel's node."""

    class TokenMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls = nn.Parameter(torch.randn(1, 1, 4))
            self.embed = nn.Conv1d(3, 4, 1)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.embed(x).transpose(1, 2)  # (B, T, C)
            tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], 1)
            return self.head(tokens.mean(1))

    graph = trace(TokenMean(), input_shape=(3, 5))
    embed = block(graph, "embed").dst.nodes
    assert pairs(block(graph, "head")) == [(c, int(embed[c])) for c in range(4)]


class CatChunk(nn.Module):
    def __init__(self, split: str) -> None:
        super().__init__()
        self.split = split
        self.a = nn.Conv2d(1, 3, 1)
        self.b = nn.Conv2d(1, 2, 1)
        self.p = nn.Conv2d(2, 1, 1)
        self.q = nn.Conv2d(3, 1, 1)
        self.r = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        if self.split == "split":
            p, q = torch.split(y, [2, 3], dim=1)
        else:
            p, q = y[:, :2], y[:, 2:]
        z = y.chunk(5, dim=1)[3]
        return torch.cat([self.p(p), self.q(q), self.r(z)], 1)


@pytest.mark.parametrize("split", ["split", "getitem"])
def test_cat_then_split_and_chunk_route_the_right_channels(split: str) -> None:
    graph = trace(CatChunk(split), input_shape=(1, 2, 2))
    a, b = block(graph, "a").dst.nodes, block(graph, "b").dst.nodes
    assert pairs(block(graph, "p")) == [(0, int(a[0])), (1, int(a[1]))]
    assert pairs(block(graph, "q")) == [(0, int(a[2])), (1, int(b[0])), (2, int(b[1]))]
    assert pairs(block(graph, "r")) == [(0, int(b[0]))]
    outs = [block(graph, n).dst.nodes for n in "pqr"]
    assert list(graph.output_nodes) == sorted(int(n) for o in outs for n in o)


class ChannelsLast(nn.Module):
    """conv -> permute to channels-last -> Linear over channels -> permute back -> conv,
    plus a reshape/transpose token view feeding a second Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1)
        self.mix = nn.Linear(4, 5)
        self.conv2 = nn.Conv2d(5, 3, 1)
        self.tokens = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.conv2(y)
        b, c, h, w = y.shape
        t = y.reshape(b, c, h * w).transpose(1, 2)  # (B, HW, C) tokens
        return self.tokens(t).mean(1)


def test_permute_and_reshape_keep_channels() -> None:
    graph = trace(ChannelsLast(), input_shape=(2, 3, 3))
    conv, mix, conv2 = (block(graph, n).dst.nodes for n in ("conv", "mix", "conv2"))
    assert pairs(block(graph, "mix")) == [(c, int(conv[c])) for c in range(4)]
    assert pairs(block(graph, "conv2")) == [(c, int(mix[c])) for c in range(5)]
    assert pairs(block(graph, "tokens")) == [(c, int(conv2[c])) for c in range(3)]
    assert list(graph.output_nodes) == list(block(graph, "tokens").dst.nodes)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        return F.relu(y + self.b(y)) * 2.0


def test_add_creates_one_join_node_per_channel_and_scalars_alias() -> None:
    graph = trace(Residual(), input_shape=(2, 3, 3))
    a, b = block(graph, "a").dst.nodes, block(graph, "b").dst.nodes
    (join,) = [blk for blk in graph.blocks if blk.kind == "struct"]
    assert join.n_out == 3 and join.groups == 3
    assert join.in_node.reshape(3, 2).tolist() == [[int(a[c]), int(b[c])] for c in range(3)]
    expected = np.zeros((3, len(join.src)))
    for c in range(3):
        expected[c, list(join.src).index(a[c])] = expected[c, list(join.src).index(b[c])] = 1
    assert np.array_equal(join.matrix().toarray(), expected)
    # ReLU and the scalar product alias: the output is the join group itself.
    assert list(graph.output_nodes) == list(join.dst.nodes)


def test_constants_and_comparisons_carry_no_new_channels() -> None:
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(3, 4)
            self.o = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            y = self.l(x)
            y = torch.where(y > 0, y, torch.zeros_like(y)) + y.new_zeros(y.shape)
            return {"out": self.o(y)}

    graph = trace(Masked(), input_shape=(3,))
    assert [b.name for b in graph.blocks] == ["l", "o"]
    assert pairs(block(graph, "o")) == [(c, int(block(graph, "l").dst.nodes[c])) for c in range(4)]


class Box(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.inner(x))


class ChannelsLastLeaf(nn.Module):
    """A black box on (B, H, W, C) tokens, as a Swin attention leaf sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, 4, 1)
        self.box = Box()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.box(self.embed(x).permute(0, 2, 3, 1))
        return self.head(y).mean((1, 2))


def test_leaf_on_channels_last_tokens_keeps_channels_last() -> None:
    graph = trace(ChannelsLastLeaf(), input_shape=(1, 5, 5), leaf_modules=["box"])
    box = block(graph, "box")
    assert box.kind == "struct" and box.n_out == 3  # C outputs, not H or W
    assert list(box.src) == list(block(graph, "embed").dst.nodes)
    assert pairs(block(graph, "head")) == [(c, int(box.dst.nodes[c])) for c in range(3)]


def test_swin_patch_merging_pads_without_inventing_channels() -> None:
    from torchvision.models.swin_transformer import PatchMerging

    class Merge(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(1, 2, 1)
            self.merge = PatchMerging(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.merge(self.embed(x).permute(0, 2, 3, 1))

    graph = trace(Merge(), input_shape=(1, 3, 3))  # odd: padded to 4x4
    embed = block(graph, "embed").dst.nodes
    # LayerNorm over 4*C: channel k*C + c is channel c of one of the four 2x2 phases.
    assert pairs(block(graph, "merge.norm")) == [(2 * k + c, int(embed[c])) for k in range(4) for c in range(2)]
    assert not analyze(graph).disconnected


def test_grouped_conv_transpose_edges_and_masks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ConvTranspose2d(4, 6, 3, groups=2), nn.Conv2d(6, 1, 1))
    graph = trace(model, input_shape=(1, 3, 3))
    up = block(graph, "1")
    w = model[1].weight.detach().double().abs().sum((2, 3))  # (in=4, out/groups=3)
    expected = np.zeros((6, 4))
    for i in range(4):
        for k in range(3):
            expected[(i // 2) * 3 + k, i] = w[i, k]  # input i of group i // 2 feeds its group's outputs
    assert np.allclose(up.matrix().toarray(), expected)
    with torch.no_grad():
        model[0].weight[3] = 0
        model[0].bias[3] = 0
    masks = alive_weight_masks(graph, flows(graph))
    want = torch.ones(4, 3, 3, 3, dtype=torch.bool)
    want[3] = False  # ConvTranspose weights are (in, out/groups, k, k): input 3's slice is dead
    assert torch.equal(masks["1.weight"], want)


def test_bn_is_a_diagonal_block_with_eval_gain() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.ReLU())
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([2.0, -0.5, 0.0]))
        model[1].running_var.copy_(torch.tensor([4.0, 1.0, 9.0]))
    model.train()
    graph = trace(model, input_shape=(1, 2, 2))
    assert model.training and model[1].training  # modes are restored after tracing
    bn = block(graph, "1")
    assert bn.kind == "diag"
    eps = model[1].eps
    expected = [2 / math.sqrt(4 + eps), 0.5 / math.sqrt(1 + eps), 0.0]
    assert np.allclose(bn.matrix().toarray(), np.diag(expected))


def test_multiple_inputs_and_outputs() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.x = nn.Linear(3, 2)
            self.y = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s = self.x(x) + self.y(y)
            return s, self.x(x)

    graph = trace(TwoHeads(), (torch.randn(1, 3), torch.randn(1, 4)))
    assert len(graph.input_nodes) == 7
    assert len(graph.output_nodes) == 4  # the join nodes and the second call's units
    assert set(graph.layers()) == {"x.weight", "y.weight"}
    assert len(graph.layers()["x.weight"]) == 2  # a module called twice: two blocks, one layer
    assert not analyze(graph).disconnected


def test_embedding_and_attention_blocks() -> None:
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            x = self.emb(tokens)
            x, _ = self.attn(x, x, x)
            return self.head(x.mean(1))

    model = Tiny()
    graph = trace(model, torch.tensor([[1, 2, 3, 4]]))
    assert set(graph.layers()) == {"emb.weight", "attn.in_proj_weight", "attn.out_proj.weight", "head.weight"}
    assert len(graph.input_nodes) == 1  # integer tokens: one vocabulary-aggregated source
    report = analyze(graph)
    assert not report.disconnected and report.dead == 0
    assert report.alive == report.parameters
    # Zeroing the query and key projections leaves the value path: still connected.
    with torch.no_grad():
        model.attn.in_proj_weight[:16] = 0
        model.attn.in_proj_bias.zero_()
    report = analyze(graph)
    assert not report.disconnected
    layer = next(r for r in report.layers if r.name == "attn.in_proj_weight")
    assert layer.nonzero == layer.alive == 64


# ---------------------------------------------------------------- masks and parametrizations


def test_pruned_module_is_read_through_orig_times_mask_even_when_stale() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    prune.random_unstructured(model[0], "weight", amount=0.25)
    graph = trace(model, input_shape=(3,))
    # Change the mask without a forward pass: the cached .weight is now stale.
    with torch.no_grad():
        model[0].weight_mask[1] = 0
        model[0].weight_mask[2] = 0
    effective = model[0].weight_orig * model[0].weight_mask
    assert int((model[0].weight != 0).sum()) > int((effective != 0).sum())  # stale indeed
    report = analyze(graph)
    first = next(layer for layer in report.layers if layer.name == "0.weight")
    assert first.nonzero == int((effective != 0).sum())
    assert first.out_alive == 2
    second = next(layer for layer in report.layers if layer.name == "2.weight")
    assert second.dead == 4  # the columns reading units 1 and 2
    masks = alive_weight_masks(graph, flows(graph))
    assert torch.equal(masks["0.weight"], effective != 0)


def test_parametrization_is_honoured() -> None:
    class DropUnit(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            keep = torch.ones_like(w)
            keep[0] = 0
            return w * keep

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    parametrize.register_parametrization(model[0], "weight", DropUnit())
    graph = trace(model, input_shape=(3,))
    report = analyze(graph)
    first, second = report.layers
    assert first.name == "0.weight" and first.nonzero == 9 and first.out_alive == 3
    assert second.dead == 2  # column 0 reads the silenced unit
    assert not model[0].parametrizations.weight.original[0].eq(0).all()


def test_graph_rereads_weights_after_pruning() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    graph = trace(model, input_shape=(3,))
    before = flows(graph).log_phi
    prune.l1_unstructured(model[2], "weight", amount=1.0)
    after = analyze(graph)
    assert math.isfinite(before) and after.log_phi == -math.inf and after.disconnected
    assert after.collapsed_layers == ["2.weight"]


# ---------------------------------------------------------------- errors


def test_untraceable_module_is_named_and_leaf_fixes_it(tests_on_path) -> None:
    import untraceable_model

    model = untraceable_model.build()
    with pytest.raises(TraceError) as info:
        trace(model, input_shape=(6,))
    message = str(info.value)
    assert "\n" not in message
    assert "gate (Gate)" in message and "leaf" in message
    for leaf in (["gate"], [untraceable_model.Gate]):
        graph = trace(model, input_shape=(6,), leaf_modules=leaf)
        assert set(graph.layers()) == {"inp.weight", "out.weight"}
        assert not analyze(graph).disconnected


def test_unplaceable_op_names_fx_node_and_enclosing_module() -> None:
    class Bilinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bi,bj->bij", self.l(x), x).flatten(1)

    model = nn.Sequential(nn.Linear(3, 3), Bilinear(), nn.Linear(9, 2))
    with pytest.raises(TraceError) as info:
        trace(model, input_shape=(3,))
    message = str(info.value)
    assert "\n" not in message
    assert "fx node 'einsum'" in message and "'1' (Bilinear)" in message and "leaf" in message
    graph = trace(model, input_shape=(3,), leaf_modules=["1"])
    assert not analyze(graph).disconnected


def test_wrong_input_shape_is_a_one_line_trace_error() -> None:
    with pytest.raises(TraceError) as info:
        trace(nn.Sequential(nn.Linear(3, 2)), input_shape=(4,))
    assert "\n" not in str(info.value) and "fx node" in str(info.value)
    with pytest.raises(TraceError):
        trace(nn.Linear(3, 2))  # neither an input nor a shape


# ---------------------------------------------------------------- torchvision


def reinit_zero_weights(model: nn.Module) -> None:
    """torchvision zero-initialises some layers (ViT's heads.head, ...): the analysis rightly
    reports those nets as disconnected, so give every all-zero weight random values to
    check that a dense net is fully connected."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.dim() > 1 and not param.any():
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)


def prunable_keys(model: nn.Module) -> set[str]:
    keys = set()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding)):
            keys.add(f"{name}.weight")
        if isinstance(module, nn.MultiheadAttention):
            keys.add(f"{name}.in_proj_weight")
    return keys


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("resnet18", 64), ("resnet50", 64), ("vgg16_bn", 64), ("mobilenet_v2", 64),
        ("densenet121", 64), ("efficientnet_b0", 64), ("vit_b_16", 224),
    ],
)
def test_torchvision_model_traces_and_is_fully_connected(name: str, size: int) -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, num_classes=10)
    reinit_zero_weights(model)
    graph = trace(model, input_shape=(3, size, size))
    assert set(graph.layers()) == prunable_keys(model)
    assert len(graph.input_nodes) == 3 and len(graph.output_nodes) == 10
    report = analyze(graph)
    assert not report.disconnected and math.isfinite(report.log_phi)
    # Random init may draw a handful of exact zeros: every nonzero weight is alive.
    assert report.dead == 0 and report.alive == report.nonzero > 0.999 * report.parameters
    assert report.cut_layers == [] and report.collapsed_layers == []
    assert report.outputs_alive == 10 and report.inputs_alive == 3


@pytest.mark.slow
def test_every_torchvision_classifier_traces_or_fails_in_one_line() -> None:
    import torchvision

    from netgraph.training.models import build_model, default_input_shape

    failures = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        torch.manual_seed(0)
        model = build_model(name, num_classes=10)
        try:
            graph = trace(model, input_shape=default_input_shape(name))
        except TraceError as error:
            message = str(error)
            assert message and "\n" not in message, name
            failures[name] = message
            # The suggested leaf (its class, so every instance) makes the model traceable.
            suggested = re.search(r"make its module '([^']+)'", message)
            assert suggested, message
            leaf = type(model.get_submodule(suggested.group(1)))
            graph = trace(model, input_shape=default_input_shape(name), leaf_modules=[leaf])
        assert len(graph.output_nodes) == 10, name
        analyze(graph)
        del model, graph
    print("\n".join(f"{k}: {v}" for k, v in failures.items()))
