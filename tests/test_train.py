"""Training engine: accuracy, loss terms, non-finite guards, masks, metrics, checkpoints, resume."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, TensorDataset

from netgraph.errors import CheckpointError, NetgraphError
from netgraph.training.engine import (
    TrainConfig,
    evaluate,
    l1_penalty,
    seed_everything,
    train,
)

DIM, CLASSES = 8, 3


def _blobs(n: int, seed: int) -> TensorDataset:
    """Three well-separated Gaussian blobs: an MLP should get them nearly all right."""
    g = torch.Generator().manual_seed(seed)
    centers = 3.0 * torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(123))
    labels = torch.randint(CLASSES, (n,), generator=g)
    return TensorDataset(centers[labels] + torch.randn(n, DIM, generator=g), labels)


def _loaders(n_train: int = 384, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    # A private shuffle generator, as netgraph.training.data.make_loaders uses: resume must restore it.
    train_loader = DataLoader(_blobs(n_train, 0), batch_size=batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(0))
    return train_loader, DataLoader(_blobs(192, 1), batch_size=64)


def _mlp(hidden: int = 32, dropout: float = 0.0, seed: int = 0) -> nn.Sequential:
    seed_everything(seed)
    return nn.Sequential(nn.Linear(DIM, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, CLASSES))


def _config(**overrides) -> TrainConfig:
    defaults = dict(epochs=2, lr=0.05, momentum=0.9, weight_decay=0.0, schedule="none")
    return TrainConfig(**(defaults | overrides))


def _run(model: nn.Module, config: TrainConfig, **kwargs):
    return train(model, *_loaders(), config, progress=False, **kwargs)


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- learning --------------------------------------------------------------------


def test_reaches_high_accuracy_on_an_easy_task() -> None:
    model = _mlp()
    result = _run(model, _config(epochs=4))
    assert result.final_accuracy >= 0.95
    assert result.best_accuracy >= result.final_accuracy
    assert evaluate(model, _loaders()[1], torch.device("cpu"))["accuracy"] == result.final_accuracy


def test_loss_decreases() -> None:
    history = _run(_mlp(), _config(epochs=3, lr=0.01)).history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_loss"] < history[0]["test_loss"]


def test_zero_epochs_only_evaluates() -> None:
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _run(model, _config(epochs=0))
    assert result.history == [] and 0 <= result.final_accuracy <= 1
    _assert_same_state(before, model.state_dict())



def test_max_steps_per_epoch_caps_each_epoch_and_progress_shows(capsys) -> None:
    model, calls = _mlp(), []

    def counted() -> torch.Tensor:
        calls.append(1)
        return model[0].weight.square().sum()

    train(model, *_loaders(), _config(max_steps_per_epoch=3, lambda_r=1e-3, log_every=2), regularizer=counted)
    assert len(calls) == 2 * 3
    assert "epoch 2/2" in capsys.readouterr().err


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("lambda_r", -0.1), ("lambda_1", -1e-5), ("lambda_r", math.nan), ("epochs", -1), ("lr", 0.0),
    ("lr", -0.1), ("optimizer", "rmsprop"), ("schedule", "linear"), ("amp", "maybe"),
])
def test_invalid_config_is_a_user_error(field: str, value) -> None:
    with pytest.raises(NetgraphError, match=field):
        TrainConfig(**{field: value})


def test_lambda_r_without_a_regularizer_is_a_user_error() -> None:
    with pytest.raises(NetgraphError, match="regularizer"):
        _run(_mlp(), _config(lambda_r=0.1))


def test_resume_needs_an_output_directory() -> None:
    with pytest.raises(NetgraphError, match="output directory"):
        _run(_mlp(), _config(), resume=True)


def test_schedules_are_functions_of_the_epoch() -> None:
    cosine = TrainConfig(epochs=4, lr=0.1, schedule="cosine")
    assert [round(cosine.lr_at(e), 6) for e in range(4)] == [0.1, 0.085355, 0.05, 0.014645]
    step = TrainConfig(lr=0.1, schedule="step", step_size=2, gamma=0.5)
    assert [step.lr_at(e) for e in range(5)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    warm = TrainConfig(lambda_r=1.0, lambda_r_warmup_epochs=4)
    assert [warm.lambda_r_at(e) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert TrainConfig(lambda_r=1.0).lambda_r_at(0) == 1.0


# --- loss terms and guards -------------------------------------------------------


def test_infinite_regularizer_is_skipped_with_one_warning() -> None:
    model = _mlp()
    calls = []

    def disconnected() -> torch.Tensor:
        calls.append(1)
        return model[0].weight.abs().sum() * math.inf  # backpropagating this would poison the weights

    with pytest.warns(RuntimeWarning, match="not finite") as caught:
        result = _run(model, _config(lambda_r=1.0), regularizer=disconnected)
    assert len([w for w in caught if "not finite" in str(w.message)]) == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [r["reg_inf_steps"] for r in result.history] == [12, 12] and len(calls) == 24
    assert all(r["reg"] is None and r["skipped_steps"] == 0 for r in result.history)
    assert result.final_accuracy >= 0.9  # the task loss still trained the model


def test_non_finite_loss_skips_the_step() -> None:
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.full((64, DIM), math.nan)
    nan_loader = DataLoader(TensorDataset(x, torch.zeros(64, dtype=torch.long)), batch_size=16)
    result = train(model, nan_loader, _loaders()[1], _config(epochs=1), progress=False)
    _assert_same_state(before, model.state_dict())
    assert result.history[0]["skipped_steps"] == 4 and result.history[0]["train_loss"] is None


def test_regularizer_gradient_reaches_the_weights() -> None:
    def norm(model: nn.Module) -> float:
        return sum(m.weight.norm().item() ** 2 for m in model if isinstance(m, nn.Linear)) ** 0.5

    plain = _mlp()
    _run(plain, _config())
    shrunk = _mlp()

    def squares() -> torch.Tensor:
        return sum(m.weight.square().sum() for m in shrunk if isinstance(m, nn.Linear))

    result = _run(shrunk, _config(lambda_r=0.5), regularizer=squares)
    assert norm(shrunk) < 0.5 * norm(plain)
    assert all(r["reg"] is not None and r["reg"] > 0 for r in result.history)


def test_l1_penalty_reads_the_masked_weight() -> None:
    model = _mlp()
    layer = model[0]
    mask = (torch.rand_like(layer.weight) > 0.5).float()
    prune.custom_from_mask(layer, "weight", mask)
    with torch.no_grad():
        layer.weight_orig[mask == 0] = 1000.0  # large hidden values that must not count
    expected = (layer.weight_orig * mask).abs().sum() + model[3].weight.abs().sum()
    penalty = l1_penalty(model)
    assert torch.allclose(penalty, expected)
    penalty.backward()
    assert (layer.weight_orig.grad[mask == 0] == 0).all()


def test_masked_weights_stay_exactly_zero() -> None:
    model = _mlp(seed=1)
    prune.random_unstructured(model[0], "weight", amount=0.5)
    mask = model[0].weight_mask.clone()

    def squares() -> torch.Tensor:
        return model[0].weight.square().sum()

    result = _run(model, _config(lambda_1=1e-4, lambda_r=1e-3, weight_decay=1e-3), regularizer=squares)
    assert torch.equal(model[0].weight_mask, mask)
    model(torch.zeros(1, DIM))  # refresh the hook-computed weight
    assert (model[0].weight[mask == 0] == 0).all()
    assert (model[0].weight[mask == 1] != 0).all()
    assert result.history[-1]["l1"] > 0


# --- files -----------------------------------------------------------------------


def test_metrics_has_one_line_per_epoch_and_final_weights_are_saved(tmp_path: Path) -> None:
    model = _mlp()
    result = _run(model, _config(epochs=3, lambda_1=1e-5), out_dir=tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records == result.history
    assert {"epoch", "train_loss", "task_loss", "reg", "l1", "test_accuracy", "test_loss", "lr",
            "lambda_r", "seconds"} <= records[0].keys()
    _assert_same_state(torch.load(tmp_path / "model.pt", weights_only=True), model.state_dict())
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 3


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    _run(_mlp(), _config(epochs=1), out_dir=tmp_path)

    def crash(obj, path, *args, **kwargs) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _run(_mlp(), _config(epochs=2), out_dir=tmp_path, resume=True)
    monkeypatch.undo()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".netgraph.lock", "checkpoint.pt", "metrics.jsonl", "model.pt"]  # no temp file left


# --- resume ----------------------------------------------------------------------


def _pruned_mlp() -> nn.Sequential:
    model = _mlp(dropout=0.2)
    prune.l1_unstructured(model[0], "weight", amount=0.3)
    return model


def test_resume_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    config = _config(epochs=3, schedule="cosine", lambda_r=0.01, lambda_r_warmup_epochs=2, lambda_1=1e-4,
                     weight_decay=1e-4)

    def regularizer_for(model: nn.Module, crash_at: int | None = None):
        calls = []

        def squares() -> torch.Tensor:
            calls.append(1)
            if len(calls) == crash_at:
                raise KeyboardInterrupt  # killed mid-epoch
            return model[3].weight.square().sum()
        return squares

    straight = _pruned_mlp()
    expected = _run(straight, config, regularizer=regularizer_for(straight))

    crashed = _pruned_mlp()
    with pytest.raises(KeyboardInterrupt):  # epoch 1 has lambda_r = 0; crash 5 steps into epoch 3
        _run(crashed, config, regularizer=regularizer_for(crashed, crash_at=12 + 5), out_dir=tmp_path)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 2

    resumed = _pruned_mlp()
    result = _run(resumed, config, regularizer=regularizer_for(resumed), out_dir=tmp_path, resume=True)
    _assert_same_state(straight.state_dict(), resumed.state_dict())
    assert [r["test_accuracy"] for r in result.history] == [r["test_accuracy"] for r in expected.history]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_in_a_fresh_directory_starts_from_scratch(tmp_path: Path) -> None:
    result = _run(_mlp(), _config(epochs=1), out_dir=tmp_path / "new", resume=True)
    assert [r["epoch"] for r in result.history] == [1]


def test_resume_refuses_another_architecture(tmp_path: Path) -> None:
    _run(_mlp(), _config(epochs=1), out_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"0\.weight \(32, 8\) vs model \(16, 8\)"):
        _run(_mlp(hidden=16), _config(epochs=2), out_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="missing keys: 0.weight_orig, 0.weight_mask; unexpected keys: 0.weight"):
        _run(_pruned_mlp(), _config(epochs=2), out_dir=tmp_path, resume=True)


def test_resume_refuses_a_changed_config(tmp_path: Path) -> None:
    _run(_mlp(), _config(epochs=1), out_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"config differs: .*lr=0\.05 \(checkpoint\) vs 0\.1"):
        _run(_mlp(), _config(epochs=2, lr=0.1), out_dir=tmp_path, resume=True)


def test_corrupt_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt is (corrupt or truncated|not a readable checkpoint)"):
        _run(_mlp(), _config(), out_dir=tmp_path, resume=True)


def test_trains_a_registry_model_on_registry_data(tmp_path: Path) -> None:
    from netgraph.training.data import load_dataset, make_loaders
    from netgraph.training.models import build_model

    splits = load_dataset("synthetic")
    train_loader, test_loader = make_loaders(splits, batch_size=64)
    seed_everything(0)
    model = build_model("mlp", splits.num_classes, splits.input_shape)
    result = train(model, train_loader, test_loader, _config(epochs=3, lambda_1=1e-5), out_dir=tmp_path,
                   progress=False)
    assert result.final_accuracy > 0.8


# --- CoNNect outside Adam's normalisation (decoupled_reg) -----------------------------------------


def _one_step_loader() -> DataLoader:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, DIM, generator=g)
    return DataLoader(TensorDataset(x, torch.randint(0, CLASSES, (16,), generator=g)), batch_size=16)


def _one_step(config: TrainConfig) -> tuple[nn.Sequential, nn.Sequential]:
    from netgraph.connect import CoNNect

    model = _mlp()
    start = copy.deepcopy(model)
    loader = _one_step_loader()
    train(model, loader, loader, config, regularizer=CoNNect(model, input_shape=(DIM,)), progress=False)
    return start, model


def test_decoupled_regularizer_equals_coupled_under_plain_sgd() -> None:
    """Without momentum or adaptivity, w - lr (g_task + lam g_R) either way."""
    base = dict(epochs=1, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, schedule="none", lambda_r=0.5)
    _, coupled = _one_step(TrainConfig(**base))
    _, decoupled = _one_step(TrainConfig(**base, decoupled_reg=True))
    for a, b in zip(coupled.parameters(), decoupled.parameters()):
        assert torch.allclose(a, b, atol=1e-7)


def test_decoupled_regularizer_step_is_outside_adam() -> None:
    """One step: Adam on the task loss alone, then w -= lr * lam * dR/dw at the old weights."""
    from netgraph.connect import CoNNect

    lr, lam = 0.01, 2.0
    config = TrainConfig(epochs=1, optimizer="adam", lr=lr, weight_decay=0.0, schedule="none", lambda_r=lam,
                         decoupled_reg=True)
    start, trained = _one_step(config)
    manual = copy.deepcopy(start)
    reg_grads = torch.autograd.grad(CoNNect(manual, input_shape=(DIM,))(), list(manual.parameters()),
                                    allow_unused=True)
    optimiser = torch.optim.Adam(manual.parameters(), lr=lr)
    inputs, targets = next(iter(_one_step_loader()))
    torch.nn.functional.cross_entropy(manual(inputs), targets).backward()
    optimiser.step()
    with torch.no_grad():
        for param, grad in zip(manual.parameters(), reg_grads):
            if grad is not None:
                param.add_(grad, alpha=-lr * lam)
    for a, b in zip(manual.parameters(), trained.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(g is not None and g.abs().max() > 0 for g in reg_grads)


def test_coupling_connect_into_adam_warns() -> None:
    config = TrainConfig(epochs=1, optimizer="adam", lr=1e-3, lambda_r=0.1, schedule="none")
    with pytest.warns(UserWarning, match="CoNNect coupled into Adam"):
        _one_step(config)
