"""Checkpoints: safe loading, unwrapping, prune masks, strict matching, one-line errors."""

from __future__ import annotations

import os
import pickle
import random
import stat
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from netgraph.atomic import atomic_write, atomic_write_text
from netgraph.connectivity.report import analyze
from netgraph.errors import CheckpointError
from netgraph.graph.tracer import trace
from netgraph.training.checkpoint import (
    apply_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def small() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


class Touch:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.path,))


def one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    model = small()
    path = save_checkpoint(model.state_dict(), tmp_path / f"m{suffix}")
    state = load_checkpoint(path)
    assert state.keys() == model.state_dict().keys()
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    apply_checkpoint(fresh, state)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_training_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    model = small()
    torch.save({"epoch": 3, "state_dict": model.state_dict(), "optimizer": {"lr": 0.1}}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt").keys() == model.state_dict().keys()
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "d.pt")
    assert "not a state dict" in one_line_error(tmp_path / "d.pt")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_prune_format_checkpoint_loads_into_a_fresh_model(tmp_path: Path, suffix: str) -> None:
    model = small()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.random_unstructured(model[3], "weight", amount=0.25)
    path = save_checkpoint(model.state_dict(), tmp_path / f"pruned{suffix}")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    apply_checkpoint(fresh, load_checkpoint(path))
    for i in (0, 3):
        assert hasattr(fresh[i], "weight_mask") and hasattr(fresh[i], "weight_orig")
        assert torch.equal(fresh[i].weight_mask, model[i].weight_mask)
        assert torch.equal(fresh[i].weight_orig * fresh[i].weight_mask, model[i].weight)
    report = analyze(trace(fresh, input_shape=(3,)))
    assert [layer.nonzero for layer in report.layers] == [6, 6]
    fresh.eval(), model.eval()
    x = torch.randn(5, 3)
    assert torch.allclose(fresh(x), model(x))


def test_mismatched_keys_list_missing_and_unexpected() -> None:
    state = small().state_dict()
    state["9.weight"] = state.pop("3.weight")
    with pytest.raises(CheckpointError) as info:
        apply_checkpoint(small(), state)
    message = str(info.value)
    assert "missing keys: 3.weight" in message and "unexpected keys: 9.weight" in message
    assert "\n" not in message


def test_shape_mismatch_names_the_tensor() -> None:
    state = small().state_dict()
    state["3.weight"] = torch.zeros(2, 5)
    with pytest.raises(CheckpointError) as info:
        apply_checkpoint(small(), state)
    assert "3.weight (2, 5) vs model (2, 4)" in str(info.value)


def test_missing_num_batches_tracked_is_optional_and_everything_else_loads() -> None:
    torch.manual_seed(1)
    source = small()
    with torch.no_grad():
        source[1].running_mean.uniform_()
    state = source.state_dict()
    del state["1.num_batches_tracked"]
    target = apply_checkpoint(small(), state)
    for key, value in state.items():
        assert torch.equal(target.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match="missing keys: 1.running_mean"):
        apply_checkpoint(small(), {k: v for k, v in state.items() if k != "1.running_mean"})


def test_missing_directory_truncated_random_text(tmp_path: Path) -> None:
    assert "not found" in one_line_error(tmp_path / "nope.pt")
    assert "directory" in one_line_error(tmp_path)
    real = save_checkpoint(small().state_dict(), tmp_path / "real.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(real[: len(real) // 2])
    assert "corrupt or truncated" in one_line_error(tmp_path / "half.pt")
    for seed in range(20):  # random bytes fail in many ways; none of them is "pickled code"
        (tmp_path / "random.pt").write_bytes(random.Random(seed).randbytes(4096))
        message = one_line_error(tmp_path / "random.pt")
        assert "corrupt" in message and "pickled code" not in message, message
    (tmp_path / "text.pt").write_text("hello world, this is not a checkpoint")
    assert "corrupt" in one_line_error(tmp_path / "text.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    one_line_error(tmp_path / "empty.pt")
    (tmp_path / "random.safetensors").write_bytes(random.Random(0).randbytes(4096))
    assert "safetensors" in one_line_error(tmp_path / "random.safetensors")
    real = save_checkpoint(small().state_dict(), tmp_path / "real.safetensors").read_bytes()
    (tmp_path / "half.safetensors").write_bytes(real[: len(real) // 2])
    one_line_error(tmp_path / "half.safetensors")


def test_pickled_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"w": torch.zeros(2), "x": Touch(marker)}, tmp_path / "zip.pt")
    with open(tmp_path / "legacy.pt", "wb") as f:
        pickle.dump({"x": Touch(marker)}, f, protocol=4)
    with open(tmp_path / "legacy2.pt", "wb") as f:
        pickle.dump({"x": Touch(marker)}, f, protocol=2)
    for name in ("zip.pt", "legacy.pt", "legacy2.pt"):
        assert "pickled code" in one_line_error(tmp_path / name), name
    assert not marker.exists()


def test_pickled_module_needs_unsafe_pickle(tmp_path: Path) -> None:
    torch.save(small(), tmp_path / "module.pt")
    assert "unsafe_pickle=True" in one_line_error(tmp_path / "module.pt")
    loaded = load_checkpoint(tmp_path / "module.pt", unsafe_pickle=True)
    assert isinstance(loaded, nn.Sequential)
    torch.save({"model": small()}, tmp_path / "wrapped.pt")
    assert isinstance(load_checkpoint(tmp_path / "wrapped.pt", unsafe_pickle=True), nn.Sequential)


def test_save_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    save_checkpoint(small().state_dict(), tmp_path / "a.pt")
    save_checkpoint(small().state_dict(), tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    atomic_write_text(target, "old")

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_writes_get_the_permissions_a_plain_write_gives(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        private = tmp_path / "private.pt"
        private.write_text("x")
        private.chmod(0o600)
        save_checkpoint(small().state_dict(), private)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644  # as open() under umask 022
    assert stat.S_IMODE(private.stat().st_mode) == 0o600  # an overwritten file keeps its mode


def test_a_pickle_of_objects_without_code_is_refused_for_what_it_holds(tmp_path: Path) -> None:
    with open(tmp_path / "sets.pt", "wb") as f:
        pickle.dump({"w": frozenset([1, 2])}, f, protocol=4)
    message = one_line_error(tmp_path / "sets.pt")
    assert "pickled objects the safe loader refuses (Unsupported operand" in message
    assert "unsafe_pickle=True" in message and "pickled code" not in message
