"""Streaming analysis: a meta-device model read one module at a time from a
safetensors file gives exactly the report of the model held in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import netgraph as ng
from netgraph.connectivity.streaming import SafetensorsLoader, analyze_streaming
from netgraph.errors import CheckpointError
from netgraph.pruning import make_permanent


@pytest.mark.parametrize("name", ["resnet20", "lenet5"])
def test_streamed_report_equals_the_in_memory_one(name: str, tmp_path: Path, monkeypatch) -> None:
    model = ng.build_model(name).eval()
    ng.prune(model, "random", compression=20, seed=1)
    make_permanent(model)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    shape = (3, 32, 32) if name == "resnet20" else (1, 28, 28)
    expected = ng.analyze(ng.trace(model, input_shape=shape)).to_dict()
    with torch.device("meta"):
        meta = ng.build_model(name).eval()
    loads, held, peak = [], set(), [0]
    load, unload = SafetensorsLoader.load, SafetensorsLoader.unload

    def counting_load(self, module):
        load(self, module)
        loads.append(module)
        held.add(module)
        peak[0] = max(peak[0], len(held))

    def counting_unload(self, module):
        unload(self, module)
        held.discard(module)

    monkeypatch.setattr(SafetensorsLoader, "load", counting_load)
    monkeypatch.setattr(SafetensorsLoader, "unload", counting_unload)
    assert analyze_streaming(meta, path, input_shape=shape).to_dict() == expected
    assert peak[0] == 1 and not held  # one module's tensors at a time, none left loaded
    assert all(p.is_meta for p in meta.parameters())


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    state = ng.build_model("lenet300").state_dict()
    del state["3.weight"]
    save_file(state, tmp_path / "w.safetensors")
    with torch.device("meta"):
        meta = ng.build_model("lenet300")
    with pytest.raises(CheckpointError, match="has no tensor for Linear.weight"):
        analyze_streaming(meta, tmp_path / "w.safetensors", input_shape=(1, 28, 28))
