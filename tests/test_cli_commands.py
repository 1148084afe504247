"""The command line as a user meets it: conventions shared by every command, the
``train`` run directory, ``analyze``'s input options and ``--strip-dead``, all
through the real CLI (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from torch import nn

import netgraph
from netgraph.cli.app import app

QUICK_TRAIN = ["--epochs", "1", "--max-steps-per-epoch", "3", "--batch-size", "32"]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- conventions -----------------------------------------------------------------------------


def test_bare_netgraph_prints_help_and_succeeds(run_cli) -> None:
    result = run_cli()
    assert result.code == 0 and "Usage" in result.stdout and "analyze" in result.stdout and not result.stderr


def test_version(run_cli) -> None:
    result = run_cli("--version")
    assert result.code == 0 and result.stdout.strip() == f"netgraph {netgraph.__version__}"


def test_every_option_of_every_command_has_help_and_choices_show_as_choices(run_cli) -> None:
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"netgraph {name} {param.opts[0]} has no help text"
    assert "<sgd|adam>" in run_cli("train", "--help").stdout
    assert "<list" not in run_cli("analyze", "--help").stdout


@pytest.mark.parametrize("device", ["tpu9", "cuda:99"])
def test_a_device_this_machine_lacks_is_bad_input(run_cli, tmp_path: Path, device: str) -> None:
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    run_cli("train", "lenet300", "--device", device, "--out", tmp_path / "run").assert_error("device")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", ["-1", "99999999999999"])
def test_seed_out_of_range_is_bad_input(run_cli, tmp_path: Path, seed: str) -> None:
    run_cli("train", "lenet300", "--seed", seed, "--out", tmp_path / "run").assert_error("seed must be in [0, 2**32)")


def test_library_parameters_are_spoken_as_flags(run_cli, tmp_path: Path) -> None:
    line = run_cli("train", "lenet300", "--dataset", "cifar10", "--out", tmp_path / "run").assert_error()
    assert "--data-root DIR" in line and "--download" in line and "data_root" not in line


# --- train: a run directory is never lost or mixed ----------------------------------------------


def test_train_writes_a_run_directory_and_refuses_to_overwrite_it(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("train", "lenet300", *QUICK_TRAIN, "--out", out).code == 0
    assert {"checkpoint.pt", "metrics.jsonl", "model.pt", "params.json"} <= set(snapshot(out))
    params = json.loads((out / "params.json").read_text())
    assert params["model"] == "lenet300" and params["input_shape"] == [1, 28, 28] and params["num_classes"] == 10
    assert params["dataset"] == "mnist5k" and params["config"]["epochs"] == 1
    before = snapshot(out)
    run_cli("train", "lenet300", *QUICK_TRAIN, "--out", out).assert_error("already holds a run", "--resume", "--force")
    assert snapshot(out) == before
    assert run_cli("train", "lenet300", *QUICK_TRAIN, "--seed", "1", "--out", out, "--force").code == 0
    assert snapshot(out)["model.pt"] != before["model.pt"]


def test_resume_continues_and_refuses_another_run(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("train", "lenet300", *QUICK_TRAIN, "--out", out).code == 0
    before = snapshot(out)
    run_cli("train", "lenet5", *QUICK_TRAIN, "--out", out, "--resume").assert_error("another run", "lenet5")
    run_cli("train", "lenet300", *QUICK_TRAIN, "--dataset", "digits", "--out", out, "--resume").assert_error(
        "another run", "digits")
    assert snapshot(out) == before
    two = ["--epochs", "2", "--max-steps-per-epoch", "3", "--batch-size", "32"]
    assert run_cli("train", "lenet300", *two, "--out", out, "--resume").code == 0
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2]
    run_cli("train", "lenet300", *QUICK_TRAIN, "--out", out, "--resume").assert_error(
        "already holds 2 epochs", "epochs >= 2")


def test_train_output_is_checked_before_any_work(run_cli, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    run_cli("train", "lenet300", "--out", tmp_path / "file").assert_error("is a file")
    run_cli("train", "lenet300", "--out", "/proc/netgraph-run").assert_error("cannot write")


@pytest.mark.parametrize(("factory", "needle"), [("raises", "ValueError: no such layer size"),
                                                 ("exits", "the factory called sys.exit(3)")])
def test_a_failing_factory_is_bad_input(run_cli, tmp_path: Path, monkeypatch, factory: str, needle: str) -> None:
    (tmp_path / "zoo.py").write_text(
        "import sys\n"
        "def raises():\n    raise ValueError('no such layer size')\n"
        "def exits():\n    sys.exit(3)\n"
    )
    monkeypatch.chdir(tmp_path)  # module:factory resolves from the current directory
    run_cli("train", f"zoo:{factory}", "--out", tmp_path / "run").assert_error(needle)
    run_cli("analyze", f"zoo:{factory}", "--input-shape", "4").assert_error(needle)


# --- analyze: inputs as PyTorch users write them -------------------------------------------------


def test_a_leading_batch_of_one_is_the_same_sample(run_cli, tmp_path: Path) -> None:
    plain, batched = tmp_path / "plain.json", tmp_path / "batched.json"
    for shape, out in (("3,32,32", plain), ("1,3,32,32", batched)):
        torch.manual_seed(0)  # the same random init both times
        assert run_cli("analyze", "resnet20", "--input-shape", shape, "--json", out).code == 0
    assert json.loads(plain.read_text()) == json.loads(batched.read_text())
    run_cli("analyze", "resnet20", "--input-shape", "8,3,32,32").assert_error("leading batch of 8", "3,32,32")


def test_num_classes_zero_is_bad_input(run_cli) -> None:
    run_cli("analyze", "lenet300", "--num-classes", "0").assert_error("--num-classes must be an integer >= 1")


def test_json_to_stdout_is_the_report_alone(run_cli) -> None:
    result = run_cli("analyze", "lenet300", "--json", "-")
    assert result.code == 0
    report = json.loads(result.stdout)
    assert report["parameters"] == 266_200 and report["disconnected"] is False
    assert "network" in result.stderr  # the table went to stderr


def test_unwritable_json_fails_before_the_analysis(run_cli, tmp_path: Path) -> None:
    run_cli("analyze", "lenet300", "--json", "/proc/report.json").assert_error("--json", "cannot write")
    run_cli("analyze", "lenet300", "--json", tmp_path).assert_error("is a directory")


ZOO = '''
import torch
from torch import nn

class Bag(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.emb, self.fc = nn.Embedding(50, 8), nn.Linear(8, num_classes)
    def forward(self, tokens):
        return self.fc(self.emb(tokens).mean(1))

class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(5, 3)
    def forward(self, x, y):
        return self.a(x) + self.b(y)

def bag(num_classes=10):
    return Bag(num_classes)

def two():
    return Two()
'''


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "tokzoo.py").write_text(ZOO)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_token_inputs_and_several_inputs(run_cli, zoo: Path) -> None:
    out = zoo / "bag.json"
    assert run_cli("analyze", "tokzoo:bag", "--input-shape", "16", "--input-dtype", "long", "--json", out).code == 0
    report = json.loads(out.read_text())
    assert not report["disconnected"] and report["parameters"] == 50 * 8 + 8 * 10
    run_cli("analyze", "tokzoo:bag", "--input-shape", "16").assert_error()  # float tokens do not index
    assert run_cli("analyze", "tokzoo:two", "--input-shape", "4", "--input-shape", "5", "--json", out).code == 0
    assert json.loads(out.read_text())["inputs"] == 4 + 5
    torch.save((torch.randn(1, 4), torch.randn(1, 5)), zoo / "pair.pt")
    assert run_cli("analyze", "tokzoo:two", "--example-input", zoo / "pair.pt", "--json", out).code == 0
    assert json.loads(out.read_text())["inputs"] == 4 + 5
    run_cli("analyze", "tokzoo:two", "--example-input", zoo / "missing.pt").assert_error("not found")
    run_cli("analyze", "tokzoo:bag", "--input-dtype", "long").assert_error("--input-shape")


# --- analysis output that explains -------------------------------------------------------------


def test_a_disconnected_resnet_names_the_collapsed_layer(run_cli, tmp_path: Path) -> None:
    model = netgraph.build_model("resnet18", 10, (3, 32, 32))
    netgraph.prune(model, "random", sparsity=0.99, seed=0)
    with torch.no_grad():
        model.fc.weight_mask.zero_()
    torch.save(model.state_dict(), tmp_path / "pruned.pt")
    out = tmp_path / "report.json"
    result = run_cli("analyze", "resnet18", "--input-shape", "3,32,32", "--num-classes", "10",
                     "--checkpoint", tmp_path / "pruned.pt", "--json", out, "--no-layers")
    assert result.code == 3
    report = json.loads(out.read_text())
    assert report["bottleneck"] == "fc.weight" and "fc.weight" in report["collapsed_layers"]
    assert "hint" not in result.stdout  # a pruned net: no dense-model hint


def test_a_dense_model_with_a_zero_initialised_head_gets_a_hint(run_cli, tmp_path: Path) -> None:
    model = netgraph.build_model("lenet300")
    with torch.no_grad():
        model[-1].weight.zero_()
    torch.save(model.state_dict(), tmp_path / "zero_head.pt")
    result = run_cli("analyze", "lenet300", "--checkpoint", tmp_path / "zero_head.pt", "--no-layers")
    assert result.code == 3
    assert "hint: 5.weight is all zeros in an otherwise dense model" in " ".join(result.stdout.split())


# --- --strip-dead ------------------------------------------------------------------------------


def _constant_unit_mlp() -> nn.Sequential:
    """Hidden unit 0 sees no input (zero row) but has a bias of 2: a constant unit
    whose outgoing weights are dead yet carry 2 * w into the output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0] = 0
        model[0].bias[0] = 2.0
    return model


def test_strip_dead_folds_constants_into_the_next_bias(run_cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "cmodels.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom test_cli_commands import _constant_unit_mlp\n"
        "def build():\n    return _constant_unit_mlp()\n" % str(Path(__file__).parent))
    monkeypatch.chdir(tmp_path)
    model = _constant_unit_mlp()
    stripped = tmp_path / "stripped.pt"
    result = run_cli("analyze", "cmodels:build", "--input-shape", "4", "--strip-dead", stripped, "--no-layers")
    assert result.code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "2 dead weights zeroed (2 of them folded into biases)" in text
    state = torch.load(stripped, weights_only=True)
    assert torch.equal(state["2.weight"][:, 0], torch.zeros(2))
    assert torch.allclose(state["2.bias"], model[2].bias + 2.0 * model[2].weight[:, 0])
    x = torch.randn(16, 4)
    rebuilt = _constant_unit_mlp()
    rebuilt.load_state_dict(state)
    assert torch.allclose(rebuilt(x), model(x), atol=1e-6)


def test_strip_dead_zeroes_exactly_zero_constants_and_keeps_nonzero_ones(tmp_path: Path) -> None:
    from netgraph.connectivity import flows, strip_dead_weights

    def net(shift: float) -> nn.Sequential:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 3, padding=1))
        with torch.no_grad():
            model[0].weight[1] = 0  # channel 1 sees no input: a constant unit, BN shift -> ReLU
            model[0].bias[1] = 0
            model[1].bias[1] = shift
        return model.eval()

    for shift, kept in ((0.0, 0), (0.5, 2 * 9)):
        model = net(shift)
        graph = netgraph.trace(model, input_shape=(2, 5, 5))
        outcome = strip_dead_weights(graph, flows(graph), (2, 5, 5), tmp_path / "s.pt")
        assert outcome.kept == kept, shift
        assert outcome.zeroed == (2 * 9 if shift == 0.0 else 0)  # conv1 reads the constant channel 1
        assert outcome.compression_after >= outcome.compression_before


def test_strip_dead_restores_the_model_and_writes_nothing_when_outputs_change(tmp_path: Path, monkeypatch) -> None:
    import netgraph.connectivity.strip as strip
    from netgraph.errors import NetgraphError

    model = netgraph.build_model("lenet300")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = netgraph.trace(model, input_shape=(1, 28, 28))
    result = netgraph.flows(graph)
    everything_dead = {k: torch.zeros_like(v) for k, v in strip.alive_weight_masks(graph, result).items()}
    monkeypatch.setattr(strip, "alive_weight_masks", lambda g, r: everything_dead)
    with pytest.raises(NetgraphError, match="changed the outputs"):
        strip.strip_dead_weights(graph, result, (1, 28, 28), tmp_path / "s.pt")
    assert not (tmp_path / "s.pt").exists()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_strip_dead_on_nan_outputs_says_so_and_leaves_no_json(run_cli, tmp_path: Path) -> None:
    model = netgraph.build_model("lenet300")
    with torch.no_grad():
        model[1].bias[0] = float("nan")
    torch.save(model.state_dict(), tmp_path / "nan.pt")
    result = run_cli("analyze", "lenet300", "--checkpoint", tmp_path / "nan.pt", "--strip-dead", tmp_path / "s.pt",
                     "--json", tmp_path / "r.json")
    result.assert_error("already NaN/Inf")
    assert not (tmp_path / "s.pt").exists() and not (tmp_path / "r.json").exists()
