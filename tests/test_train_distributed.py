"""Training under ``torchrun``: two gloo ranks end with identical weights, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch import nn

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    import netgraph.training.engine as T

    out = Path(sys.argv[1])
    import os
    rank, world_size, device = T.setup_distributed(int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    writes = []
    save, write = T.atomic_torch_save, T.atomic_write_text  # record who writes files
    T.atomic_torch_save = lambda obj, path: (writes.append(Path(path).name), save(obj, path))[1]
    T.atomic_write_text = lambda path, text: (writes.append(Path(path).name), write(path, text))[1]

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    data = TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())
    train_loader = DataLoader(data, batch_size=32, sampler=DistributedSampler(data, seed=0))
    test_loader = DataLoader(data, batch_size=64, sampler=DistributedSampler(data, shuffle=False))

    torch.manual_seed(rank)  # different initial weights: DDP must start every rank from rank 0's
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    config = T.TrainConfig(epochs=1, lr=0.1, lambda_1=1e-4, lambda_r=1e-3)
    result = T.train(model, train_loader, test_loader, config, out_dir=out / "run", progress=False,
                     regularizer=lambda: model[3].weight.square().sum())
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(
        {"world_size": world_size, "writes": writes, "accuracy": result.final_accuracy}))
    T.cleanup_distributed()
''')


def test_torchrun_two_ranks_train_identically(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["accuracy"] == ranks[1]["accuracy"] > 0.5  # reduced over ranks
    assert sorted(ranks[0]["writes"]) == ["checkpoint.pt", "metrics.jsonl", "model.pt"]
    assert ranks[1]["writes"] == []

    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key

    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["test_accuracy"] == ranks[0]["accuracy"]


EQUIVALENCE = textwrap.dedent('''
    import os, sys
    from pathlib import Path

    import torch
    from torch import nn

    import netgraph as ng
    from netgraph.training.data import DataSplits, make_loaders
    from netgraph.training.engine import cleanup_distributed, setup_distributed

    out = Path(sys.argv[1])
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, world, _ = setup_distributed(world, int(os.environ.get("LOCAL_RANK", 0)))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)  # 200 = 6 global batches of 32 and one of 8
    data = torch.utils.data.TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())
    splits = DataSplits(data, data, (8,), 2, "synthetic")
    train_loader, test_loader = make_loaders(splits, 32, seed=3, distributed=world > 1)
    torch.manual_seed(0)  # the same initial weights in every process
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    config = ng.TrainConfig(epochs=2, lr=0.05, lambda_1=1e-3, lambda_r=0.1, weight_decay=0.0)
    ng.train(model, train_loader, test_loader, config, regularizer=ng.CoNNect(model, input_shape=(8,)), progress=False)
    if rank == 0:
        torch.save(model.state_dict(), out / f"world{world}.pt")
    cleanup_distributed()
''')


def test_two_ranks_take_the_same_steps_as_one_process(tmp_path: Path) -> None:
    """One global sample order sharded across ranks, the task loss averaged over the
    global batch (the last one is smaller: 8 = 4 + 4), CoNNect and L1 counted once.
    Only float reduction order differs, so weights agree to float32 rounding."""
    script = tmp_path / "equivalence.py"
    script.write_text(EQUIVALENCE)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = Path(sys.executable).parent / "torchrun"
    double = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (torch.load(tmp_path / f"world{w}.pt", weights_only=True) for w in (1, 2))
    torch.manual_seed(0)
    initial = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    for key in one:
        assert (one[key] - initial.state_dict()[key]).abs().max() > 1e-3, key  # it trained
        assert torch.allclose(one[key], two[key], rtol=0, atol=2e-6), (key, (one[key] - two[key]).abs().max())


def test_a_locked_run_directory_stops_every_rank_at_once(tmp_path: Path) -> None:
    """Only rank 0 locks; its refusal is broadcast, so rank 1 stops too instead of
    waiting in DDP's first collective for the 30-minute timeout."""
    from netgraph.training.runlock import run_lock

    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    with run_lock(tmp_path / "run"):  # another job holds the run directory
        done = subprocess.run(
            [str(torchrun), "--standalone", "--nproc_per_node=2", "--tee=3", str(script), str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode != 0
    refusals = [line for line in done.stdout.splitlines() + done.stderr.splitlines()
                if f"is in use by another job (pid {os.getpid()})" in line]
    assert {line.split("]")[0] for line in refusals} >= {"[default0", "[default1"}, done.stderr[-3000:]
    assert not list((tmp_path / "run").glob("*.pt")) and not list(tmp_path.glob("rank*.json"))
