"""Streaming analysis: a meta-device model read one module at a time from a
safetensors file gives the report of the model held in memory (every count exact,
flows to float32 rounding), reading each prunable tensor twice; a transformers
decoder traced through three layers gives the full trace's graph."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import netgraph as ng
import netgraph.graph.repeat as repeat
from netgraph.connectivity.streaming import SafetensorsLoader, _MappedTensors, analyze_streaming
from netgraph.errors import CheckpointError
from netgraph.graph.repeat import trace_repeated
from netgraph.pruning import make_permanent

FLOATS = {"log_phi", "path_share"}  # propagated in float32 when streaming; all else is exact


def assert_reports_match(streamed: dict, expected: dict) -> None:
    """Equal, floats of the flows to 1e-5 relative (float32 products vs float64)."""
    assert streamed.keys() == expected.keys()
    for key, value in expected.items():
        if key == "layers":
            assert len(streamed[key]) == len(value)
            for mine, theirs in zip(streamed[key], value):
                assert_reports_match(mine, theirs)
        elif key in FLOATS and value is not None:
            assert math.isclose(streamed[key], value, rel_tol=1e-5, abs_tol=1e-9), (key, streamed[key], value)
        else:
            assert streamed[key] == value, key


def count_loads(monkeypatch) -> tuple[dict, list]:
    """Record loads per module and the most modules loaded at once."""
    loads: dict[nn.Module, int] = {}
    held: set[nn.Module] = set()
    peak = [0]
    load, unload = SafetensorsLoader.load, SafetensorsLoader.unload

    def counting_load(self, module):
        load(self, module)
        loads[module] = loads.get(module, 0) + 1
        held.add(module)
        peak[0] = max(peak[0], len(held))

    def counting_unload(self, module):
        unload(self, module)
        held.discard(module)

    monkeypatch.setattr(SafetensorsLoader, "load", counting_load)
    monkeypatch.setattr(SafetensorsLoader, "unload", counting_unload)
    return loads, peak


@pytest.mark.parametrize("name", ["resnet20", "lenet5"])
def test_streamed_report_equals_the_in_memory_one(name: str, tmp_path: Path, monkeypatch) -> None:
    model = ng.build_model(name).eval()
    ng.prune(model, "random", compression=20, seed=1)
    make_permanent(model)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    shape = (3, 32, 32) if name == "resnet20" else (1, 28, 28)
    expected = ng.analyze(ng.trace(model, input_shape=shape)).to_dict()
    assert expected["dead"] > 0  # the fused count has dead weights to find
    with torch.device("meta"):
        meta = ng.build_model(name).eval()
    loads, peak = count_loads(monkeypatch)
    assert_reports_match(analyze_streaming(meta, path, input_shape=shape).to_dict(), expected)
    assert peak[0] == 1  # one module's tensors at a time
    assert all(p.is_meta for p in meta.parameters())  # none left loaded
    prunable = [m for m in meta.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    names = {m: n for n, m in meta.named_modules()}
    assert {names[m]: loads[m] for m in prunable if loads[m] != 2} == {}  # forward and backward sweeps only


def llama(layers: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def gpt2(layers: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=96, n_embd=32, n_layer=layers, n_head=4, n_positions=32,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


def describe(graph: ng.ChannelGraph) -> tuple:
    """Everything a graph holds, modules by their name in its model."""
    names = {id(m): n for n, m in graph.model.named_modules(remove_duplicate=False)}

    def source(s):  # type: ignore[no-untyped-def]
        return type(s).__name__, [(f.name, names[id(v)] if isinstance(v, nn.Module) else repr(v))
                                  for f in dataclasses.fields(s) for v in [getattr(s, f.name)]]

    return ([(g.name, g.offset, g.size, g.kind) for g in graph.groups],
            [(b.name, b.kind, b.dst.name, b.dst.offset, b.groups, b.in_per_group, b.in_chan.tolist(),
              b.in_node.tolist(), source(b.source)) for b in graph.blocks],
            graph.input_nodes.tolist(), graph.output_nodes.tolist(),
            [(h.name, h.scores.name, h.channels.name, h.n_heads, h.n_kv_heads, h.head_dim) for h in graph.heads])


@pytest.mark.parametrize("build,layers", [(llama, 6), (gpt2, 5)])
def test_replicated_trace_is_the_full_trace(build, layers: int, monkeypatch) -> None:
    with torch.device("meta"):
        model = build(layers)
    tokens = (torch.zeros((1, 5), dtype=torch.long, device="meta"),)
    full = ng.trace(model, example_input=tokens)
    traced = []
    real_trace = repeat.trace
    monkeypatch.setattr(repeat, "trace", lambda m, **kw: traced.append(m.config.num_hidden_layers) or real_trace(m, **kw))
    replicated = trace_repeated(model, example_input=tokens)
    assert traced == [3]  # three layers traced, the rest replicated
    assert describe(replicated) == describe(full)
    assert replicated.model is model


def test_a_non_meta_or_shallow_model_is_traced_in_full(monkeypatch) -> None:
    traced = []
    real_trace = repeat.trace
    monkeypatch.setattr(repeat, "trace", lambda m, **kw: traced.append(m.config.num_hidden_layers) or real_trace(m, **kw))
    tokens = (torch.zeros((1, 5), dtype=torch.long),)
    trace_repeated(llama(4), example_input=tokens)  # real weights: nothing to gain
    with torch.device("meta"):
        shallow = llama(3)
    trace_repeated(shallow, example_input=(tokens[0].to("meta"),))
    assert traced == [4, 3]


def test_streamed_llama_report_equals_the_in_memory_one(tmp_path: Path, monkeypatch) -> None:
    """bf16, half of every matrix zero, one MLP's outputs cut to leave dead weights upstream."""
    model = llama(5).to(torch.bfloat16)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(torch.rand(param.shape, generator=generator) < 0.5)
        model.model.layers[3].mlp.down_proj.weight[:, :30] = 0  # 30 of 48 units feed nothing
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    tokens = torch.zeros((1, 5), dtype=torch.long)
    expected = ng.analyze(ng.trace(model, example_input=(tokens,))).to_dict()
    assert expected["dead"] > 0
    with torch.device("meta"):
        meta = llama(5).to(torch.bfloat16)
    loads, peak = count_loads(monkeypatch)
    streamed = analyze_streaming(meta, path, example_input=(tokens.to("meta"),)).to_dict()
    assert_reports_match(streamed, expected)
    assert peak[0] == 1
    linears = [m for m in meta.modules() if isinstance(m, nn.Linear)]
    assert [loads[m] for m in linears] == [2] * len(linears)


def test_mapped_views_equal_what_safetensors_reads(tmp_path: Path) -> None:
    """Every dtype, an empty tensor, one torch cannot view (float8: read by safetensors),
    and values intact after a neighbour's pages were released."""
    from safetensors import safe_open

    state = {name: (torch.randn(5, 7) * 100).to(dtype) for name, dtype in
             [("bf16", torch.bfloat16), ("f16", torch.float16), ("f32", torch.float32), ("f64", torch.float64)]}
    state |= {"i64": torch.arange(-3, 30), "u8": torch.arange(200, dtype=torch.uint8), "flag": torch.rand(9) < 0.5,
              "empty": torch.empty(0, 4), "f8": torch.randn(6).to(torch.float8_e4m3fn)}
    save_file(state, tmp_path / "w.safetensors")
    mapped = _MappedTensors(tmp_path / "w.safetensors")
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as file:
        for key in state:
            view = mapped.get(key)
            if key == "f8":
                assert view is None
                continue
            assert view.dtype == state[key].dtype and torch.equal(view, file.get_tensor(key)), key
            mapped.release(key)
            assert torch.equal(view, state[key]), key  # released pages fault back in from the file
    mapped.close()


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    state = ng.build_model("lenet300").state_dict()
    del state["3.weight"]
    save_file(state, tmp_path / "w.safetensors")
    with torch.device("meta"):
        meta = ng.build_model("lenet300")
    with pytest.raises(CheckpointError, match="has no tensor for Linear.weight"):
        analyze_streaming(meta, tmp_path / "w.safetensors", input_shape=(1, 28, 28))
