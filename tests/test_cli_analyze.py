"""``netgraph analyze``: exit codes (0 connected, 3 disconnected, 2 user error), one-line
errors without tracebacks, checkpoints of every flavour, ``--leaf``, ``--json``."""

from __future__ import annotations

import json
import math
import pickle
import random
from pathlib import Path

import pytest
import torch
from torch.nn.utils import prune

from netgraph.training.checkpoint import save_checkpoint
from netgraph.training.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

# The project "mlp": Flatten, Linear(784, 64) "1", ReLU, Linear(64, 64) "3", ReLU, Linear(64, 10) "5".


def mlp_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("mlp").state_dict()


def assert_one_line_error(result, *needles: str) -> str:
    return result.assert_error(*needles)


def report(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def saved_mlp(tmp_path: Path) -> Path:
    return save_checkpoint(mlp_state(), tmp_path / "mlp.pt")


def test_connected_model_exits_0_and_writes_json(run_cli, saved_mlp: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_cli("analyze", "mlp", "--checkpoint", saved_mlp, "--json", out)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert "connected" in result.stdout and "1.weight" in result.stdout
    data = report(out)
    assert data["schema_version"] == 1 and data["model"] == "Sequential"
    assert data["disconnected"] is False and math.isfinite(data["log_phi"])
    assert data["parameters"] == 784 * 64 + 64 * 64 + 64 * 10 == data["nonzero"] == data["alive"]
    assert [layer["name"] for layer in data["layers"]] == ["1.weight", "3.weight", "5.weight"]
    assert {"nominal_compression", "effective_compression", "cut_layers", "collapsed_layers", "bottleneck",
            "constant_units", "nonfinite_weights", "dead", "inputs_alive", "outputs_alive"} <= set(data)


def test_all_zero_layer_exits_3(run_cli, tmp_path: Path) -> None:
    state = mlp_state()
    state["3.weight"].zero_()
    path = save_checkpoint(state, tmp_path / "dead.pt")
    out = tmp_path / "r.json"
    result = run_cli("analyze", "mlp", "--checkpoint", path, "--json", out, "--no-layers")
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr and "DISCONNECTED" in result.stdout
    data = report(out)
    assert data["disconnected"] is True and data["log_phi"] is None
    assert data["collapsed_layers"] == ["3.weight"]
    assert data["cut_layers"] == ["1.weight", "3.weight", "5.weight"]


def test_nan_and_inf_weights_are_reported(run_cli, tmp_path: Path) -> None:
    state = mlp_state()
    state["3.weight"][0, 0] = math.nan
    state["5.weight"][1, 2] = math.inf
    out = tmp_path / "r.json"
    result = run_cli("analyze", "mlp", "--checkpoint", save_checkpoint(state, tmp_path / "nan.pt"), "--json", out)
    assert result.code == 0, result.stderr
    assert "NaN/Inf" in result.stdout
    data = report(out)
    assert data["nonfinite_weights"] == 2 and math.isfinite(data["log_phi"])
    # ...and with a collapsed layer elsewhere the verdict is still "disconnected".
    state["1.weight"].zero_()
    result = run_cli("analyze", "mlp", "--checkpoint", save_checkpoint(state, tmp_path / "nan0.pt"))
    assert result.code == 3, result.stderr


def test_safetensors_round_trip(run_cli, tmp_path: Path) -> None:
    state = mlp_state()
    state["5.weight"][:, :32] = 0
    out_pt, out_st = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli("analyze", "mlp", "--checkpoint", save_checkpoint(state, tmp_path / "m.pt"), "--json", out_pt).code == 0
    assert run_cli("analyze", "mlp", "--checkpoint", save_checkpoint(state, tmp_path / "m.safetensors"), "--json", out_st).code == 0
    a, b = report(out_pt), report(out_st)
    assert a == b
    assert a["nonzero"] == 784 * 64 + 64 * 64 + 32 * 10
    assert a["dead"] == 32 * 64  # hidden-2 units 0..31 feed nothing: their input rows are dead


def test_prune_format_checkpoint(run_cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp")
    prune.l1_unstructured(model[3], "weight", amount=0.9)
    with torch.no_grad():
        model[3].weight_mask[:, 5] = 0  # hidden-1 unit 5 now feeds nothing
    state = model.state_dict()
    assert "3.weight_orig" in state and "3.weight_mask" in state
    out = tmp_path / "r.json"
    for suffix in (".pt", ".safetensors"):
        result = run_cli("analyze", "mlp", "--checkpoint", save_checkpoint(state, tmp_path / f"p{suffix}"), "--json", out)
        assert result.code == 0, result.stderr
        layer = next(entry for entry in report(out)["layers"] if entry["name"] == "3.weight")
        assert layer["nonzero"] == int(model[3].weight_mask.sum())
        assert layer["in_alive"] <= 63


def test_missing_file(run_cli, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("analyze", "mlp", "--checkpoint", tmp_path / "nope.pt"), "not found")


def test_truncated_file(run_cli, saved_mlp: Path, tmp_path: Path) -> None:
    data = saved_mlp.read_bytes()
    half = tmp_path / "half.pt"
    half.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_cli("analyze", "mlp", "--checkpoint", half), "corrupt or truncated")


def test_random_bytes(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "random.pt"
    path.write_bytes(random.Random(0).randbytes(10_000))
    line = assert_one_line_error(run_cli("analyze", "mlp", "--checkpoint", path), "corrupt")
    assert "unsafe-pickle" not in line
    path = tmp_path / "random.safetensors"
    path.write_bytes(random.Random(0).randbytes(10_000))
    assert_one_line_error(run_cli("analyze", "mlp", "--checkpoint", path), "safetensors")


class Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.path,))


def test_pickle_with_code_is_refused(run_cli, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"1.weight": Touch(marker)}, tmp_path / "evil.pt")
    with open(tmp_path / "evil_legacy.pt", "wb") as f:
        pickle.dump({"1.weight": Touch(marker)}, f, protocol=4)
    for name in ("evil.pt", "evil_legacy.pt"):
        assert_one_line_error(run_cli("analyze", "mlp", "--checkpoint", tmp_path / name), "pickled code", "--unsafe-pickle")
    assert not marker.exists()


def test_pickled_module_works_with_unsafe_pickle(run_cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp")
    with torch.no_grad():
        model[5].weight.zero_()
    torch.save(model, tmp_path / "module.pt")
    assert_one_line_error(run_cli("analyze", "mlp", "--checkpoint", tmp_path / "module.pt"), "--unsafe-pickle")
    # The pickled module itself is analysed (its zeroed head makes it disconnected).
    result = run_cli("analyze", "mlp", "--checkpoint", tmp_path / "module.pt", "--unsafe-pickle", "--no-layers")
    assert result.code == 3, result.stderr


def test_mismatched_keys(run_cli, tmp_path: Path) -> None:
    state = mlp_state()
    state["7.weight"] = state.pop("5.weight")
    line = assert_one_line_error(
        run_cli("analyze", "mlp", "--checkpoint", save_checkpoint(state, tmp_path / "k.pt")),
        "missing keys: 5.weight", "unexpected keys: 7.weight",
    )
    assert "Sequential" in line


def test_shape_mismatch(run_cli, saved_mlp: Path) -> None:
    # lenet300 has the same layer names but 300/100 hidden units.
    assert_one_line_error(
        run_cli("analyze", "lenet300", "--checkpoint", saved_mlp), "shapes do not match", "1.weight (64, 784) vs model (300, 784)"
    )


def test_untraceable_model_names_the_module_and_leaf_fixes_it(run_cli, tests_on_path, tmp_path: Path) -> None:
    line = assert_one_line_error(run_cli("analyze", "untraceable_model:build", "--input-shape", "6"), "gate (Gate)", "--leaf")
    assert "control flow" in line
    out = tmp_path / "r.json"
    for leaf in ("gate", "Gate"):
        result = run_cli("analyze", "untraceable_model:build", "--input-shape", "6", "--leaf", leaf, "--json", out)
        assert result.code == 0, result.stderr
        assert [entry["name"] for entry in report(out)["layers"]] == ["inp.weight", "out.weight"]
    assert_one_line_error(
        run_cli("analyze", "untraceable_model:build", "--input-shape", "6", "--leaf", "nope"), "--leaf nope"
    )


def test_failing_factory_is_one_line(run_cli, tests_on_path) -> None:
    assert_one_line_error(
        run_cli("analyze", "untraceable_model:broken", "--input-shape", "6"),
        "untraceable_model:broken", "RuntimeError: this factory is broken",
    )


def test_other_user_errors_are_one_line(run_cli, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("analyze", "no_such_model"), "unknown model")
    assert_one_line_error(run_cli("analyze", "mlp", "--input-shape", "a,b"), "--input-shape")
    assert_one_line_error(run_cli("analyze", "mlp", "--input-shape", "1,28,27", "--checkpoint",
                                  save_checkpoint(mlp_state(), tmp_path / "m.pt")), "shapes do not match")
    assert_one_line_error(run_cli("analyze", "lenet5", "--input-shape", "1,2,2"), "too small")
    result = run_cli("analyze", "mlp", "--json", tmp_path)
    assert_one_line_error(result, "is a directory")
    assert result.stdout == ""  # refused before any work
