"""Hugging Face models through the torch.export front-end, the Shakespeare corpus and
LLM-Pruner-style head/channel pruning. Needs the [llm] extra; skipped without it."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

os.environ["HF_HUB_OFFLINE"] = "1"  # random init from configs only: never the hub
transformers = pytest.importorskip("transformers", reason="needs the [llm] extra: pip install -e '.[llm]'")

from netgraph.connectivity import analyze, flows  # noqa: E402
from netgraph.errors import NetgraphError, TraceError  # noqa: E402
from netgraph.graph import trace  # noqa: E402

VOCAB = 64
POSITIONAL = ("position_embeddings", "token_type_embeddings", "wpe")  # constants added: no input->output path


def tiny_llama(kv_heads: int = 4, layers: int = 2) -> nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=kv_heads,
    )
    return transformers.LlamaForCausalLM(config)


def tiny(family: str) -> nn.Module:
    torch.manual_seed(0)
    if family == "llama":
        return tiny_llama()
    if family == "gpt2":
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0))
    return transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        num_labels=3))


def tokens(length: int = 8) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length))


@pytest.mark.parametrize(("family", "outputs"), [("llama", VOCAB), ("gpt2", VOCAB), ("bert", 3)])
def test_dense_hf_model_traces_connected_with_every_weight_alive(family: str, outputs: int) -> None:
    model = tiny(family)
    graph = trace(model, example_input=tokens())
    weights = {n for n, p in model.named_parameters() if p.dim() >= 2 and not any(k in n for k in POSITIONAL)}
    assert set(graph.layers()) == weights
    assert len(graph.output_nodes) == outputs and len(graph.input_nodes) == 1
    report = analyze(graph)
    assert not report.disconnected and math.isfinite(report.log_phi)
    assert report.dead == 0 and report.alive == report.nonzero > 0.99 * report.parameters
    assert [h.n_heads for h in graph.heads] == [4, 4]


def test_gqa_heads_are_recognised_and_keyword_inputs_trace() -> None:
    graph = trace(tiny_llama(kv_heads=2), input_shape=(8,), input_dtype=torch.long)
    assert [(h.n_heads, h.n_kv_heads, h.head_dim) for h in graph.heads] == [(4, 2, 8)] * 2
    bert = tiny("bert")
    inputs = {"input_ids": tokens(), "attention_mask": torch.ones(1, 8, dtype=torch.long)}
    assert not analyze(trace(bert, example_input=inputs)).disconnected


def _group(graph, name: str):  # type: ignore[no-untyped-def]
    return next(g for g in graph.groups if g.name == name)


@pytest.mark.parametrize("head", [0, 2])
def test_zeroing_one_heads_o_projection_columns_cuts_exactly_that_head(head: int) -> None:
    model = tiny_llama()
    d = 8
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        attn.o_proj.weight[:, head * d : (head + 1) * d] = 0
    graph = trace(model, example_input=tokens())
    alive = flows(graph).alive
    heads = graph.heads[0]
    dead = np.flatnonzero(~alive)
    expected = {int(n) for n in heads.head_nodes(head)} | {heads.scores.offset + head}
    for proj in ("q_proj", "k_proj", "v_proj"):
        expected |= {int(n) for n in _group(graph, f"model.layers.0.self_attn.{proj}").nodes[head * d : (head + 1) * d]}
    # the rotary joins of that head's q and k channels die too; nothing outside layer 0's attention does
    groups = [graph.groups[i].name for i in graph.node_group[dead]]
    assert expected <= set(dead.tolist())
    assert all(name.startswith("model.layers.0.self_attn") for name in groups)
    other = np.concatenate([heads.head_nodes(h) for h in range(4) if h != head])
    assert alive[other].all()
    report = analyze(graph)
    assert report.dead == 3 * d * 32  # q, k and v rows of the head: nonzero yet on no path
    from netgraph.pruning.llm import connect_scores

    assert connect_scores(model)[0].heads[head] == 0 and (np.delete(connect_scores(model)[0].heads, head) > 0).all()


def test_transformer_encoder_traces() -> None:
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), nn.Linear(16, 3))
    graph = trace(model, example_input=torch.randn(1, 5, 16), input_channel_dim=-1)
    report = analyze(graph)
    assert len(graph.input_nodes) == 16 and len(graph.output_nodes) == 3
    assert not report.disconnected and report.dead == 0 and len(graph.heads) == 2


def test_export_failure_names_the_op_and_the_branch(tests_on_path) -> None:
    import untraceable_model

    with pytest.raises(TraceError) as info:
        trace(untraceable_model.build(), input_shape=(6,), frontend="export")
    message = str(info.value)
    assert "\n" not in message and "data-dependent branch" in message and "aten.item" in message
    assert "untraceable_model.py:20" in message and "if x.sum() > 0" in message


# ---------------------------------------------------------------- pruning


def calibration() -> list[torch.Tensor]:
    return [torch.randint(0, VOCAB, (2, 12)) for _ in range(2)]


@pytest.mark.parametrize("importance", ["taylor", "connect", "taylor_connect"])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_pruning_half_the_heads_gives_a_runnable_connected_model(importance: str, kv_heads: int, tmp_path) -> None:
    from netgraph.pruning.llm import config_shapes, layer_shapes, llama_from_config, prune_llama

    model = tiny_llama(kv_heads, layers=3)
    result = prune_llama(model, 0.5, importance=importance, calibration=calibration())
    assert result.pruned_layers == [1]  # first and last stay dense
    assert layer_shapes(model) == [(4, kv_heads, 48), (2, kv_heads // 2, 24), (4, kv_heads, 48)]
    assert layer_shapes(model) == config_shapes(model.config)
    x = tokens(10)
    logits = model(x).logits
    assert logits.shape == (1, 10, VOCAB) and torch.isfinite(logits).all()
    model.save_pretrained(tmp_path)
    rebuilt = llama_from_config(transformers.AutoConfig.from_pretrained(tmp_path))
    rebuilt.load_state_dict(model.state_dict())
    assert torch.allclose(rebuilt(x).logits, logits)
    report = analyze(trace(model, example_input=x))
    assert not report.disconnected and report.dead == 0


def test_taylor_matches_a_hand_computed_saliency() -> None:
    from netgraph.pruning.llm import taylor_scores

    model = tiny_llama()
    batch = calibration()[:1]
    scores = taylor_scores(model, batch)
    ids = batch[0]
    logits = model(input_ids=ids).logits
    loss = nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:])  # (B, V, T) form
    mlp = model.model.layers[1].mlp
    grads = torch.autograd.grad(loss, [mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight])
    c = 5
    by_hand = sum(
        (w[c] * g[c]).abs().sum() if i < 2 else (w[:, c] * g[:, c]).abs().sum()
        for i, (w, g) in enumerate(zip([mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight], grads))
    )
    assert torch.isclose(scores[1].channels[c], by_hand, rtol=1e-4)


def test_a_ratio_that_removes_every_head_is_refused_before_any_change() -> None:
    from netgraph.pruning.llm import layer_shapes, prune_llama

    model = tiny_llama(layers=3)
    before = layer_shapes(model)
    with pytest.raises(NetgraphError, match="removes every head of layer 1"):
        prune_llama(model, 0.9, importance="connect")
    assert layer_shapes(model) == before


# ---------------------------------------------------------------- corpus and training


def test_corpus_split_is_by_play_and_an_empty_split_is_refused() -> None:
    from netgraph.training.text import TEST_PLAYS, VALIDATION_PLAYS, corpus_splits, play_texts

    plays = play_texts()
    assert len(plays) == 38 and not set(VALIDATION_PLAYS) & set(TEST_PLAYS)
    splits = corpus_splits()
    assert plays["macbeth"].encode()[:200] in splits["validation"]
    assert plays["macbeth"].encode()[:200] not in splits["train"]
    assert sum(len(s) for s in splits.values()) > 5_000_000
    with pytest.raises(NetgraphError, match="validation split of the corpus is empty"):
        corpus_splits(validation=())


def test_a_few_training_steps_lower_the_perplexity() -> None:
    from netgraph.training.engine import TrainConfig, train
    from netgraph.training.text import CausalLM, build_llama, llama_config, perplexity, text_loaders

    loaders = text_loaders(seq_len=32, batch_size=8, eval_windows=16)
    torch.manual_seed(0)
    model = CausalLM(build_llama(llama_config(layers=1, hidden=32, heads=2)))
    before = perplexity(model, loaders.validation)
    train(model, loaders.train, loaders.validation,
          TrainConfig(epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, max_steps_per_epoch=30), progress=False)
    after = perplexity(model, loaders.validation)
    assert before > 200 and after < 0.5 * before  # uniform over 256 bytes is 256


TINY_LM = ("--layers", "1", "--hidden", "32", "--heads", "2", "--seq-len", "32", "--batch-size", "8",
           "--max-steps-per-epoch", "5", "--eval-windows", "8")


def test_train_lm_cli_reports_validation_perplexity_and_resumes(run_cli, tmp_path) -> None:
    result = run_cli("train-lm", "--out", tmp_path, *TINY_LM)
    assert result.code == 0, result.stderr
    assert "validation perplexity" in result.stdout
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "config.json").is_file()
    first = (tmp_path / "metrics.jsonl").read_text().splitlines()
    again = run_cli("train-lm", "--out", tmp_path, *TINY_LM, "--epochs", "2", "--resume")
    assert again.code == 0, again.stderr
    records = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2 and records[0] == first[0]  # epoch 1 kept, epoch 2 added


def test_train_lm_cli_bad_shape_is_one_line_exit_2(run_cli, tmp_path) -> None:
    result = run_cli("train-lm", "--out", tmp_path, *TINY_LM[:2], "--hidden", "30", "--heads", "4")
    assert result.code == 2 and len(result.error_lines) == 1
    assert "hidden size 30 is not a multiple of the head count 4" in result.stderr


def test_analyze_cli_traces_a_factory_llama_from_token_ids(run_cli, tests_on_path) -> None:
    result = run_cli("analyze", "hf_models:tiny_llama", "--input-shape", "16", "--input-dtype", "long")
    assert result.code == 0, result.stderr
    assert "model.layers.1.mlp.down_proj.weight" in result.stdout and "connected (64/64 outputs" in result.stdout
    bad = run_cli("analyze", "hf_models:tiny_llama", "--input-shape", "16", "--input-dtype", "complex")
    assert bad.code == 2 and len(bad.error_lines) == 1 and "'complex' is not one of 'float', 'long'" in bad.stderr


def test_prune_cli_removes_heads_of_a_llama_with_every_importance(run_cli, tests_on_path, tmp_path) -> None:
    """``netgraph prune --structured`` on a causal LM: LLM-Pruner-style heads and MLP channels,
    Taylor on calibration batches of the Shakespeare training split, data-free CoNNect."""
    import json

    from netgraph.pruning.llm import llama_from_config

    for importance, extra in (("connect", ()), ("taylor+connect", ("--dataset", "shakespeare", "--calibration-batches", "2"))):
        out = tmp_path / importance
        result = run_cli("prune", "hf_models:small_llama", "--structured", "--importance", importance,
                         "--pruning-ratio", "0.5", "--input-shape", "16", "--batch-size", "4", *extra, "--out", out)
        assert result.code == 0, result.stderr
        report = json.loads((out / "report.json").read_text())
        assert report["heads_before"] == 16 and report["heads_after"] == 12  # layers 1 and 2: 4 -> 2 query heads
        assert report["params_after"] < report["params_before"] and not report["connectivity"]["disconnected"]
        assert report["macs_per_token_after"] < report["macs_per_token_before"]
        assert (report["perplexity_before"] is None) == (importance == "connect")
        config = transformers.AutoConfig.from_pretrained(out)  # the pruned shapes reload
        rebuilt = llama_from_config(config)
        rebuilt.load_state_dict(torch.load(out / "model.pt", weights_only=True))
        assert rebuilt(torch.randint(0, 256, (1, 16))).logits.shape == (1, 16, 256)
    run_cli("prune", "hf_models:small_llama", "--structured", "--importance", "taylor", "--pruning-ratio", "0.5",
            "--input-shape", "16", "--out", tmp_path / "bad").assert_error("--dataset")
    run_cli("prune", "hf_models:small_llama", "--structured", "--importance", "magnitude", "--pruning-ratio", "0.5",
            "--input-shape", "16", "--out", tmp_path / "bad").assert_error("a causal LM is pruned by")
    assert not (tmp_path / "bad").exists()
