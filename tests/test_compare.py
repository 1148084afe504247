"""``netgraph compare``: the sweep engine, its records, resume, figures and the CLI's errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

import netgraph.experiments.comparison as compare_module
from netgraph.cli import main
from netgraph.connectivity.report import analyze
from netgraph.errors import NetgraphError
from netgraph.experiments.comparison import (
    SweepConfig,
    SweepInterrupted,
    compare,
    critical_compressions,
    parse_levels,
)
from netgraph.experiments.sweep import RESULT_KEYS, count_flops, score_methods
from netgraph.graph.tracer import trace
from netgraph.pruning import prunable_parameters, total_weights
from netgraph.training.models import build_model

METHODS = ["magnitude", "synflow"]
LEVELS = [10.0, 100.0]
CLI_ARGS = ["compare", "--model", "mlp", "--dataset", "synthetic", "--methods", ",".join(METHODS),
            "--levels", "10x,100x", "--epochs", "1", "--seeds", "0", "--no-progress", "--jobs", "1"]
FIGURES = ["accuracy_vs_compression", "effective_vs_nominal", "layer_density_init", "layer_density_post",
           "log_phi_vs_compression", "surviving_paths_init_magnitude", "surviving_paths_init_synflow"]


def tiny_config(**changes) -> SweepConfig:
    """The sweep ``CLI_ARGS`` describes: 2 methods x 2 levels x 1 seed, both protocols, 1 epoch."""
    return SweepConfig(**{"model": "mlp", "dataset": "synthetic", "methods": METHODS, "levels": LEVELS,
                          "epochs": 1, "finetune_epochs": 1, **changes})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The tiny sweep, run once (single-threaded, as conftest's ``one_thread``: far
    faster on a shared 2-core box)."""
    out = tmp_path_factory.mktemp("compare") / "results"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = compare(tiny_config(), out, progress=False, save_models="all")
    finally:
        torch.set_num_threads(threads)
    return out, result


@pytest.fixture
def sweep_copy(sweep, tmp_path) -> Path:
    """A private copy of the finished sweep, for tests that change it."""
    target = tmp_path / "results"
    shutil.copytree(sweep[0], target)
    return target


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --- the end-to-end sweep ---------------------------------------------------------------------


def test_tiny_sweep_writes_every_record_table_and_figure(sweep):
    out, result = sweep
    names = {f"{p}-{m}-c{c}-s0" for p in ("init", "post") for m in METHODS for c in ("10", "100")}
    assert {p.name for p in (out / "runs").iterdir()} == names
    for name in names:
        assert {"params.json", "metrics.json", "log.txt", "model.pt"} <= {p.name for p in (out / "runs" / name).iterdir()}
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 8 and all(tuple(row) == RESULT_KEYS for row in rows)
    assert rows == result.rows
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8 and tuple(table[0]) == tuple(k for k in RESULT_KEYS if k != "layers")
    for row in rows:
        assert row["protocol"] in ("init", "post") and isinstance(row["target_compression"], float)
        assert isinstance(row["dead"], int) and isinstance(row["disconnected"], bool)
        assert isinstance(row["collapsed_layers"], list) and isinstance(row["cut_layers"], list)
        assert row["log_phi"] is None if row["disconnected"] else math.isfinite(row["log_phi"])
        assert 0 <= row["accuracy_before_finetune"] <= 1 and 0 <= row["accuracy_after_finetune"] <= 1
        assert set(row["layers"]) == {"1.weight", "3.weight", "5.weight"}
        for layer in row["layers"].values():
            assert 0 <= layer["alive_density"] <= layer["density"] <= 1
    sweep_json = json.loads((out / "sweep.json").read_text())["sweep"]
    assert sweep_json["model"] == "mlp" and sweep_json["methods"] == {"init": METHODS, "post": METHODS}
    assert sweep_json["budget"]["iterations"] == 100 and sweep_json["regularizers"]["lambda_r"] > 0
    critical = json.loads((out / "critical.json").read_text())["critical"]
    assert {(c["protocol"], c["method"]) for c in critical} == {(p, m) for p in ("init", "post") for m in METHODS}
    summary = (out / "summary.md").read_text()
    assert "| magnitude |" in summary and "Critical compression" in summary
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
        html = (out / "figures" / f"{name}.html").read_text()
        assert "plotly" in html.lower() and "newPlot" in html, name
        assert f"figures/{name}.png" in summary
    assert result.notes == [] and result.failed == {}


def test_the_same_sweep_twice_gives_byte_identical_tables(sweep, tmp_path, one_thread):
    """A rerun from scratch (no figures, no saved models: neither changes a run)
    reproduces every table byte for byte: seeds fix initialisation, batch order and
    the random scores, and nothing in the tables depends on time or paths."""
    first, _ = sweep
    again = tmp_path / "again"
    compare(tiny_config(), again, progress=False, save_models="none", figures=False)
    for name in ("results.csv", "results.json", "critical.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name


def test_worker_processes_give_the_same_tables(sweep, tmp_path, one_thread):
    """Two spawned workers (one thread each, like the one-thread sweep) share the runs
    out dynamically, the dense run first; every run reads only its seed and the dense
    run on disk, so the tables are byte-identical to the one-process sweep."""
    first, _ = sweep
    again = tmp_path / "workers"
    result = compare(tiny_config(), again, progress=False, save_models="none", figures=False, jobs=2)
    assert sorted(result.computed) == sorted(p.name for p in (first / "runs").iterdir())
    for name in ("results.csv", "results.json", "critical.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name


def test_compression_and_connectivity_match_the_saved_models(sweep):
    out, result = sweep
    total = total_weights(prunable_parameters(build_model("mlp", 4, (1, 8, 8))))
    for row in result.rows:
        keep = round(total / row["target_compression"])
        assert row["parameters"] == keep
        assert row["nominal_compression"] == pytest.approx(total / keep)
        assert abs(row["nominal_compression"] / row["target_compression"] - 1) < 0.5 * row["target_compression"] / total + 1e-9
        assert row["flops"] == row["parameters"]  # every layer of an MLP on a flat input: one position
        name = f"{row['protocol']}-{row['method']}-c{row['target_compression']:.4g}-s{row['seed']}"
        model = build_model("mlp", 4, (1, 8, 8))
        model.load_state_dict(torch.load(out / "runs" / name / "model.pt", weights_only=True))
        report = analyze(trace(model, input_shape=(1, 8, 8)))
        assert row["dead"] == report.dead and row["disconnected"] == report.disconnected
        assert row["collapsed_layers"] == report.collapsed_layers and row["cut_layers"] == report.cut_layers
        assert row["effective_compression"] == pytest.approx(report.effective_compression)
        if not report.disconnected:
            assert row["log_phi"] == pytest.approx(report.log_phi)


def test_resume_recomputes_only_unfinished_runs(sweep_copy, one_thread):
    redo = sweep_copy / "runs" / "post-synflow-c100-s0"
    (redo / "metrics.json").unlink()
    before = {k: v for k, v in _mtimes(sweep_copy / "runs").items() if k.endswith("metrics.json")}
    dense = _mtimes(sweep_copy / "dense")
    result = compare(tiny_config(), sweep_copy, progress=False, save_models="all", figures=False)
    assert result.computed == ["post-synflow-c100-s0"] and len(result.skipped) == 7
    after = {k: v for k, v in _mtimes(sweep_copy / "runs").items() if k.endswith("metrics.json")}
    assert {k for k in after if after[k] != before.get(k)} == {"post-synflow-c100-s0/metrics.json"}
    assert _mtimes(sweep_copy / "dense") == dense  # the cached dense run was read back, not retrained
    assert len(json.loads((sweep_copy / "results.json").read_text())) == 8


def test_a_different_sweep_is_refused_without_touching_anything(sweep_copy, capsys):
    before = _mtimes(sweep_copy)
    with pytest.raises(NetgraphError, match="holds a different sweep .*budget.epochs"):
        compare(tiny_config(epochs=2), sweep_copy, progress=False)
    assert main([*CLI_ARGS, "--seeds", "0,1", "--out", str(sweep_copy)]) == 2
    assert "different sweep" in _one_line_error(capsys)
    assert _mtimes(sweep_copy) == before


def test_interrupt_keeps_finished_runs(sweep_copy, capsys, monkeypatch):
    (sweep_copy / "runs" / "init-magnitude-c100-s0" / "metrics.json").unlink()
    kept = {k: v for k, v in _mtimes(sweep_copy).items() if k.endswith("metrics.json")}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_module, "run_one", interrupted)
    with pytest.raises(SweepInterrupted, match="7 of 8 runs are finished"):
        compare(tiny_config(), sweep_copy, progress=False, figures=False)
    assert main([*CLI_ARGS, "--out", str(sweep_copy)]) == 130
    assert "interrupted" in _one_line_error(capsys)
    assert {k: v for k, v in _mtimes(sweep_copy).items() if k.endswith("metrics.json")} == kept


def test_a_failed_run_is_reported_after_the_others(sweep_copy, monkeypatch):
    (sweep_copy / "runs" / "init-synflow-c10-s0" / "metrics.json").unlink()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(compare_module, "run_one", broken)
    with pytest.raises(NetgraphError, match=r"1 of 8 runs failed \(first: init-synflow-c10-s0: RuntimeError: boom"):
        compare(tiny_config(), sweep_copy, progress=False, figures=False)
    assert "boom" in (sweep_copy / "runs" / "init-synflow-c10-s0" / "error.txt").read_text()
    assert len(json.loads((sweep_copy / "results.json").read_text())) == 7


def test_force_replaces_a_different_sweep(sweep_copy, monkeypatch):
    (sweep_copy / "notes.txt").write_text("mine")
    monkeypatch.setattr(compare_module, "run_one", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(SweepInterrupted):
        compare(tiny_config(epochs=2), sweep_copy, progress=False, force=True, figures=False)
    assert not (sweep_copy / "runs").exists() or not any((sweep_copy / "runs").rglob("metrics.json"))
    assert json.loads((sweep_copy / "sweep.json").read_text())["sweep"]["budget"]["epochs"] == 2
    assert (sweep_copy / "notes.txt").read_text() == "mine"  # force only deletes what a sweep writes


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", ""], "method list is empty"),
        (["--methods", ","], "method list is empty"),
        (["--methods", "magnitude,nosuch"], "unknown method 'nosuch': choose from random, magnitude"),
        (["--levels", "10^0.5,10^-1"], "must be >= 0"),
        (["--levels", "0.5x"], "below 1"),
        (["--levels", "0.99"], "0.99 is ambiguous: a compression is >= 1; write 99% for a sparsity of 0.99 (100x) or 10^0.99 for 9.772x"),
        (["--levels", "two"], "cannot read 'two'"),
        (["--model", "nosuch"], "unknown model 'nosuch': choose one of lenet300"),
        (["--dataset", "nosuch"], "unknown dataset 'nosuch': choose one of mnist5k"),
        (["--protocols", "init", "--methods", "imp"], "imp runs only in the post protocol"),
        (["--protocols", "later"], "unknown protocol"),
        (["--seeds", "a"], "--seeds must be"),
        (["--jobs", "0"], "--jobs must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(extra, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*CLI_ARGS, "--out", str(out), *extra]) == 2
    line = _one_line_error(capsys)
    assert line.startswith("error: ") and message in line
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("not a directory")
    assert main([*CLI_ARGS, "--out", str(target)]) == 2
    assert "is a file" in _one_line_error(capsys)
    assert target.read_text() == "not a directory"


# --- pieces -------------------------------------------------------------------------------------


def test_parse_levels_reads_compressions_sparsities_exponents_and_ranges():
    assert parse_levels("10^0.5,10") == pytest.approx([10**0.5, 10.0])
    assert parse_levels("30x,99%,1") == pytest.approx([1.0, 30.0, 100.0])
    assert parse_levels("10^1:10^2:0.5") == pytest.approx([10.0, 10**1.5, 100.0])
    assert parse_levels([10, 100.0, "10x"]) == [10.0, 100.0]
    for bad in ("10^-0.5", "0.9x", "0.9", "", "1:2:0", "10^1:10^2:0", "150%"):
        with pytest.raises(NetgraphError):
            parse_levels(bad)


def test_the_order_of_methods_does_not_make_another_sweep():
    assert tiny_config(methods=["synflow", "magnitude"]).identity() == tiny_config().identity()
    assert tiny_config(methods=None).methods[-3:] == ["magnitude+l1", "magnitude+l1+connect", "imp"]
    assert tiny_config(methods=None, protocols=["init"]).methods == score_methods()  # every registered score
    with pytest.raises(NetgraphError, match="seeds must be >= 0"):
        tiny_config(seeds=[-1])


def test_critical_compression_definitions():
    def row(method, level, disconnected=False, collapsed=()):
        return {"protocol": "init", "method": method, "target_compression": level,
                "disconnected": disconnected, "collapsed_layers": list(collapsed)}

    rows = [row("a", 10), row("a", 100), row("a", 1000, disconnected=True, collapsed=["x"]),
            row("b", 10), row("b", 100, collapsed=["x"]), row("b", 1000, disconnected=True),
            row("c", 10, disconnected=True)]
    found = {r["method"]: r for r in critical_compressions(rows)}
    assert (found["a"]["critical_compression"], found["a"]["first_disconnected"]) == (100, 1000)
    assert (found["b"]["critical_compression"], found["b"]["first_disconnected"], found["b"]["first_collapsed"]) == (10, 1000, 100)
    assert (found["c"]["critical_compression"], found["c"]["first_disconnected"]) == (None, 10)


def test_flops_count_nonzero_weights_times_output_positions():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 3, 3, stride=2), nn.Flatten(), nn.Linear(27, 5))
    with torch.no_grad():
        net[0].weight[0] = 0  # 9 of 18 weights left
    expected = 9 * 8 * 8 + 54 * 3 * 3 + 27 * 5
    assert count_flops(net, (1, 8, 8)) == expected
