"""``netgraph prune`` in-process: both modes, the run directory, exit codes and bad input."""

from __future__ import annotations

import json
import re

import pytest
import torch

PARAMS_KEYS = {"command", "model", "input_shape", "num_classes"}
STRUCTURED_KEYS = {"params_before", "params_after", "macs_before", "macs_after", "latency_ms_before",
                   "latency_ms_after", "channels_removed", "accuracy_before", "accuracy_after_pruning",
                   "accuracy_after_finetune", "connectivity"}


def _json(path):
    return json.loads(path.read_text())


def test_data_free_pruning_of_any_model_needs_no_dataset(run_cli, tmp_path):
    """The issue's case: an RGB model pruned with SynFlow, no dataset setting the shape."""
    out = tmp_path / "run"
    result = run_cli("prune", "resnet20", "--method", "synflow", "--sparsity", "0.9", "--iterations", "3",
                     "--input-shape", "3,16,16", "--num-classes", "7", "--out", out)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".netgraph.lock", "model.pt", "params.json", "report.json"]
    params = _json(out / "params.json")
    assert PARAMS_KEYS <= params.keys() and "method" in params
    assert (params["model"], params["input_shape"], params["num_classes"]) == ("resnet20", [3, 16, 16], 7)
    report = _json(out / "report.json")
    assert report["method"] == "synflow"
    assert report["target_compression"] == pytest.approx(10.0)
    assert report["achieved_compression"] == pytest.approx(10.0, rel=1e-3)
    assert report["connectivity"]["disconnected"] is False
    state = torch.load(out / "model.pt", weights_only=True)
    assert any(k.endswith("weight_mask") for k in state)
    assert "infx" not in result.stdout


def test_a_disconnected_result_exits_3_and_prints_inf_not_infx(run_cli, tmp_path):
    result = run_cli("prune", "lenet300", "--method", "magnitude", "--compression", "10^4.5", "--out", tmp_path / "r")
    assert result.code == 3, result.stderr
    assert "DISCONNECTED" in result.stdout and "infx" not in result.stdout
    assert _json(tmp_path / "r" / "report.json")["connectivity"]["disconnected"] is True


def test_accuracies_before_and_after_fine_tuning_are_printed_and_reported(run_cli, tmp_path):
    result = run_cli("prune", "mlp", "--method", "snip", "--sparsity", "80%", "--dataset", "digits",
                     "--finetune-epochs", "1", "--out", tmp_path / "r")
    assert result.code == 0, result.stderr
    assert "after fine-tuning" in result.stdout
    report = _json(tmp_path / "r" / "report.json")
    assert all(0 <= report[k] <= 1 for k in ("accuracy_before", "accuracy_after_pruning", "accuracy_after_finetune"))
    assert _json(tmp_path / "r" / "params.json")["input_shape"] == [1, 8, 8]


@pytest.mark.parametrize(("args", "message"), [
    (["--sparsity", "99"], "ambiguous: write --sparsity 99% .* or --compression 99"),
    (["--sparsity", "0.9", "--compression", "10"], "exactly one"),
    (["--compression", "0.99"], "ambiguous"),
    (["--sparsity", "0.9", "--method", "snip"], "give --dataset"),
    (["--sparsity", "0.9", "--device", "tpu9"], "device 'tpu9'"),
    (["--sparsity", "0.9", "--pruning-ratio", "0.5"], "need --structured"),
    (["--structured", "--importance", "taylor", "--pruning-ratio", "0.5"], "give --dataset"),
    (["--structured", "--pruning-ratio", "1.0"], "in \\[0, 1\\)"),
    (["--structured", "--target-macs", "1"], "reduction > 1"),
    (["--structured", "--target-macs", "1000x"], "out of reach"),
    (["--structured", "--importance", "hessian", "--pruning-ratio", "0.5"], "choose one of"),
    (["--structured", "--pruning-ratio", "0.5", "--sparse-train-epochs", "1"], "needs --dataset and --lambda-r"),
    (["--structured", "--pruning-ratio", "0.5", "--lambda-r", "1"], "give --sparse-train-epochs"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(run_cli, tmp_path, args, message):
    out = tmp_path / "run"
    result = run_cli("prune", "lenet5", *args, "--out", out)
    assert result.code == 2
    assert len(result.error_lines) == 1
    assert re.search(message, result.stderr), result.stderr
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_is_a_user_error(run_cli, tmp_path):
    result = run_cli("prune", "mlp", "--sparsity", "0.5", "--device", "cuda", "--out", tmp_path / "r")
    assert result.code == 2 and "no CUDA GPU" in result.stderr


def test_a_directory_holding_a_run_needs_force(run_cli, tmp_path):
    """The same rule as ``train``: a directory that holds a run is replaced only with --force;
    other files in it are the user's and stay."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_cli("prune", "mlp", "--sparsity", "0.5", "--out", out).code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run_cli("prune", "mlp", "--sparsity", "0.9", "--out", out)
    assert refused.code == 2 and "already holds a run" in refused.stderr and "--force" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_cli("prune", "mlp", "--sparsity", "0.9", "--out", out, "--force").code == 0
    assert (out / "model.pt").read_bytes() != before["model.pt"] and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("model", "shape", "importance"), [
    ("resnet20", "3,32,32", "connect"),
    ("lenet5", "1,28,28", "magnitude+connect"),
    ("structured_models:branchy", "3,8,8", "connect"),
])
def test_structured_pruning_writes_a_smaller_model_that_analyze_reloads(run_cli, tmp_path, tests_on_path,
                                                                        model, shape, importance):
    out = tmp_path / "run"
    result = run_cli("prune", model, "--structured", "--importance", importance, "--pruning-ratio", "0.4",
                     "--input-shape", shape, "--out", out)
    assert result.code == 0, result.stderr
    report = _json(out / "report.json")
    assert STRUCTURED_KEYS <= report.keys()
    assert report["params_after"] < report["params_before"] and report["macs_after"] < report["macs_before"]
    assert report["channels_removed"] and all(n > 0 for n in report["channels_removed"].values())
    assert report["connectivity"]["disconnected"] is False
    assert _json(out / "params.json")["importance"] == importance

    analyzed = run_cli("analyze", model, "--checkpoint", out / "model.pt", "--input-shape", shape,
                       "--json", tmp_path / "a.json")
    assert analyzed.code == 0, analyzed.stderr
    assert _json(tmp_path / "a.json")["parameters"] == report["connectivity"]["parameters"]
    if ":" not in model:  # the reloaded model computes what the pruned one did
        from netgraph.cli.loading import resolve_model

        net, dims = resolve_model(model, out / "model.pt", tuple(int(s) for s in shape.split(",")))
        assert sum(p.numel() for p in net.parameters()) == report["params_after"]
        assert net.eval()(torch.randn(2, *dims)).shape == (2, 10)


def test_structured_sparse_training_then_taylor_to_a_mac_target_reports_every_accuracy(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("prune", "smallcnn", "--structured", "--importance", "taylor+connect", "--target-macs", "2x",
                     "--dataset", "digits", "--sparse-train-epochs", "1", "--lambda-r", "1",
                     "--finetune-epochs", "1", "--out", out)
    assert result.code == 0, result.stderr
    report = _json(out / "report.json")
    assert report["macs_after"] <= report["macs_before"] / 2
    assert all(report[k] is not None for k in ("accuracy_before", "accuracy_after_sparse_training",
                                                "accuracy_after_pruning", "accuracy_after_finetune"))
    assert _json(out / "params.json")["sparse_train_epochs"] == 1
    assert "after fine-tuning" in result.stdout


def test_an_architecture_torch_pruning_cannot_group_is_named(run_cli, tmp_path, tests_on_path):
    result = run_cli("prune", "structured_models:scaled", "--structured", "--pruning-ratio", "0.5",
                     "--input-shape", "3,8,8", "--out", tmp_path / "r")
    assert result.code == 2 and "'scale'" in result.stderr and len(result.error_lines) == 1
    assert not (tmp_path / "r").exists()


def test_a_structured_checkpoint_of_another_architecture_is_refused(run_cli, tmp_path):
    out = tmp_path / "run"
    assert run_cli("prune", "lenet5", "--structured", "--pruning-ratio", "0.5", "--out", out).code == 0
    result = run_cli("analyze", "resnet20", "--checkpoint", out / "model.pt")
    assert result.code == 2 and "does not match" in result.stderr


@pytest.mark.slow
def test_torchvision_resnet18_synflow_and_structured_connect(run_cli, tmp_path):
    """The issue's two cases on the real architecture: data-free SynFlow on an RGB model,
    and structured CoNNect pruning reloaded through ``analyze`` by its name."""
    result = run_cli("prune", "resnet18", "--method", "synflow", "--sparsity", "0.99", "--iterations", "10",
                     "--input-shape", "3,32,32", "--out", tmp_path / "u")
    assert result.code == 0, result.stderr
    result = run_cli("prune", "resnet18", "--structured", "--importance", "connect", "--target-macs", "2x",
                     "--input-shape", "3,32,32", "--num-classes", "10", "--out", tmp_path / "s")
    assert result.code == 0, result.stderr
    report = _json(tmp_path / "s" / "report.json")
    assert report["macs_after"] <= report["macs_before"] / 2
    analyzed = run_cli("analyze", "resnet18", "--checkpoint", tmp_path / "s" / "model.pt", "--input-shape", "3,32,32",
                       "--num-classes", "10", "--no-layers")
    assert analyzed.code == 0, analyzed.stderr
