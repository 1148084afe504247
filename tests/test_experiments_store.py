"""netgraph.experiments.store: resumable units and the identity of an output directory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from netgraph.errors import NetgraphError
from netgraph.experiments.store import claim_out, jsonable, run_unit, unit_path

IDENTITY = {"model": "mlp", "budget": {"epochs": 1, "lr": 0.01}}
CLAIM = {"identity_file": "sweep.json", "field": "sweep", "units": ("runs",), "owned": ("runs", "results.csv",
                                                                                        "sweep.json")}


class Counter:
    """A unit's computation that counts its calls."""

    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_a_finished_unit_is_read_back_not_recomputed(tmp_path, caplog):
    caplog.set_level("INFO", logger="netgraph")
    compute = Counter({"acc": np.float64(0.5), "loss": math.inf, "shape": (1, 2), "n": torch.tensor(3)})
    first = run_unit(tmp_path, ("dense", "mlp", "seed0"), compute)
    assert first == {"acc": 0.5, "loss": None, "shape": [1, 2], "n": 3}  # JSON types, inf -> None
    assert "[done] dense/mlp/seed0" in caplog.text  # a progress note on the package's logger
    assert run_unit(tmp_path, ("dense", "mlp", "seed0"), compute) == first
    assert compute.calls == 1
    assert json.loads(unit_path(tmp_path, "dense", "mlp", "seed0").read_text()) == first


def test_unit_path_is_file_system_safe(tmp_path):
    path = unit_path(tmp_path, "a/b", "x 1", "lr=0.1")
    assert path == tmp_path / "runs" / "a_b__x_1__lr=0.1.json"


def test_a_missing_companion_or_an_unreadable_record_is_recomputed(tmp_path):
    weights = tmp_path / "models" / "w.pt"
    compute = Counter({"acc": 1.0})
    run_unit(tmp_path, ("u",), compute, log=False, companions=[weights])
    assert compute.calls == 1  # no weights yet: computed
    run_unit(tmp_path, ("u",), compute, log=False, companions=[weights])
    assert compute.calls == 2  # the weights are still missing: computed again
    weights.parent.mkdir()
    weights.write_bytes(b"w")
    run_unit(tmp_path, ("u",), compute, log=False, companions=[weights])
    assert compute.calls == 2
    unit_path(tmp_path, "u").write_text("{not json")
    assert run_unit(tmp_path, ("u",), compute, log=False, companions=[weights]) == {"acc": 1.0}
    assert compute.calls == 3


def test_an_interrupted_unit_leaves_no_record(tmp_path):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_unit(tmp_path, ("u",), interrupted, log=False)
    assert not unit_path(tmp_path, "u").exists() and not list((tmp_path).rglob("*.json"))
    assert run_unit(tmp_path, ("u",), Counter([1]), log=False) == [1]


def test_jsonable_nested():
    assert jsonable({1: [math.nan, (2.0, -math.inf)], "b": np.int64(4)}) == {"1": [None, [2.0, None]], "b": 4}


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_claim_out_resumes_the_same_experiment_and_refuses_another(tmp_path):
    out = tmp_path / "out"
    assert claim_out(out, IDENTITY, force=False, **CLAIM) is False  # nothing there yet
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "r.json").write_text("{}")
    (out / "mine.txt").write_text("keep")
    (out / "sweep.json").write_text(json.dumps({"format": 1, "sweep": IDENTITY}))
    assert claim_out(out, IDENTITY, force=False, **CLAIM) is True
    before = _files(out)
    other = {"model": "mlp", "budget": {"epochs": 2, "lr": 0.01}}
    with pytest.raises(NetgraphError, match=r"holds a different sweep \(budget.epochs 1 there vs 2 now\)"):
        claim_out(out, other, force=False, **CLAIM)
    assert _files(out) == before
    assert claim_out(out, other, force=True, **CLAIM) is False
    assert _files(out) == ["mine.txt"]  # force deletes only what the experiment owns


def test_claim_out_refuses_units_without_an_identity_and_a_file(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(NetgraphError, match="holds runs but no sweep.json"):
        claim_out(tmp_path, IDENTITY, force=False, **CLAIM)
    (tmp_path / "sweep.json").write_text("[1, 2]")
    with pytest.raises(NetgraphError, match="is not a netgraph sweep description"):
        claim_out(tmp_path, IDENTITY, force=False, **CLAIM)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(NetgraphError, match="is a file"):
        claim_out(target, IDENTITY, force=True, **CLAIM)
    assert target.read_text() == "x"
