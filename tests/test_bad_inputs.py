"""A corpus of bad inputs for every command: each ends in exit 2 and one ``error:``
line on stderr, with no traceback and no new or changed file anywhere in the test's
directory (the working directory included)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import netgraph as ng

LENET = "lenet300"


class Touch:
    """Unpickling this would create a file: proof that code ran."""

    def __reduce__(self):
        return (open, ("/tmp/netgraph-bad-input-ran-code", "w"))


def write_files(root: Path) -> dict[str, Path]:
    """Every bad file the cases refer to, made fresh by the test."""
    files = root / "files"
    files.mkdir()
    good = ng.build_model(LENET).state_dict()
    made: dict[str, bytes | object] = {}

    def save(name: str, obj) -> None:
        torch.save(obj, files / name)

    (files / "empty.pt").write_bytes(b"")
    (files / "text.pt").write_text("this is not a checkpoint\n")
    (files / "random.pt").write_bytes(bytes(range(256)) * 4)
    (files / "json.pt").write_text('{"weight": [1, 2, 3]}')
    (files / "garbage.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    save("whole.pt", good)
    (files / "truncated.pt").write_bytes((files / "whole.pt").read_bytes()[:5000])
    (files / "code.pt").write_bytes(pickle.dumps(Touch()))
    save("list.pt", [1, 2, 3])
    save("other_arch.pt", ng.build_model("lenet5").state_dict())
    save("missing_key.pt", {k: v for k, v in good.items() if k != "1.weight"})
    save("extra_key.pt", {**good, "ghost.weight": torch.zeros(2)})
    save("wrong_shape.pt", {**good, "1.weight": torch.zeros(10, 784)})
    save("meta.pt", {**good, "1.weight": good["1.weight"].to("meta")})
    save("sparse.pt", {**good, "1.weight": good["1.weight"].to_sparse()})
    save("complex.pt", {**good, "1.weight": good["1.weight"].to(torch.complex64)})
    save("example_list_of_ints.pt", [1, 2])
    save("example_string.pt", "hello")
    (files / "a_dir.pt").mkdir()
    del made
    return {p.name: p for p in files.iterdir()}


CHECKPOINTS = ["empty.pt", "text.pt", "random.pt", "json.pt", "garbage.safetensors", "truncated.pt", "code.pt",
               "list.pt", "other_arch.pt", "missing_key.pt", "extra_key.pt", "wrong_shape.pt", "meta.pt",
               "sparse.pt", "complex.pt", "a_dir.pt", "absent.pt"]


def cases() -> list[tuple[str, tuple[str, ...]]]:
    """(id, argv) pairs; ``{f}`` in an argument is the folder of generated files."""
    out: list[tuple[str, tuple[str, ...]]] = []
    add = lambda name, *argv: out.append((name, argv))  # noqa: E731

    # analyze: checkpoints of every bad kind, models, shapes, options
    for ckpt in CHECKPOINTS:
        add(f"analyze-ckpt-{ckpt}", "analyze", LENET, "--checkpoint", "{f}/" + ckpt)
        add(f"train-nothing-{ckpt}", "plot", "{f}/" + ckpt, "--model", LENET, "--out", "{d}/plots")
    for model in ["nosuch", "nosuch:factory", "os:getcwd", "tests_missing_module:build", "resnet18x", ":", ""]:
        add(f"analyze-model-{model or 'empty'}", "analyze", model)
    for shape in ["a,b", "0,28,28", "-1,28", "", "1,2,2", "3.5,2", "8,1,28,28", ",,,"]:
        add(f"analyze-shape-{shape or 'empty'}", "analyze", "lenet5", "--input-shape", shape)
    for extra in [("--num-classes", "0"), ("--num-classes", "-3"), ("--num-classes", "ten"),
                  ("--leaf", "nosuchmodule"), ("--input-dtype", "complex"), ("--input-dtype", "long"),
                  ("--json", "/proc/report.json"), ("--json", "{d}"), ("--strip-dead", "/proc/s.pt"),
                  ("--strip-dead", "{d}"), ("--example-input", "{f}/absent.pt"),
                  ("--example-input", "{f}/example_list_of_ints.pt"), ("--example-input", "{f}/example_string.pt"),
                  ("--example-input", "{f}/code.pt"), ("--nosuchflag",), ("--checkpoint",)]:
        add(f"analyze-{'-'.join(extra)}", "analyze", LENET, *extra)

    # train: options out of range, paths, data
    for extra in [("--epochs", "-1"), ("--epochs", "x"), ("--batch-size", "0"), ("--lr", "0"), ("--lr", "-1"),
                  ("--lr", "nan"), ("--momentum", "-0.5"), ("--weight-decay", "-1"), ("--optimizer", "rmsprop"),
                  ("--schedule", "linear"), ("--lambda-r", "-1"), ("--lambda-1", "-1"), ("--lambda-r-warmup", "-2"),
                  ("--seed", "-1"), ("--seed", "99999999999999"), ("--device", "tpu9"), ("--device", "cuda:99"),
                  ("--dataset", "nosuch"), ("--dataset", "cifar10"), ("--dataset", "imagefolder"),
                  ("--dataset", "mnist", "--data-root", "{f}/absent"), ("--out", "/proc/run"),
                  ("--out", "{f}/whole.pt"), ("--max-steps-per-epoch", "0"), ("--resume", "--force"),
                  ("--dataset", "imagefolder", "--data-root", "{f}", "--download")]:
        add(f"train-{'-'.join(extra)}", "train", LENET, *extra)
    add("train-model-nosuch", "train", "nosuch")
    add("train-lenet5-shape", "train", "resnet18", "--dataset", "mnist5k")

    # compare: levels, methods, protocols, seeds, paths
    for extra in [("--levels", "0.99"), ("--levels", "0.5x"), ("--levels", "two"), ("--levels", "150%"),
                  ("--levels", "10^-1"), ("--levels", ""), ("--levels", "10^1:10^2:0"), ("--methods", "nosuch"),
                  ("--methods", ","), ("--protocols", "later"), ("--protocols", "init", "--methods", "imp"),
                  ("--seeds", "a"), ("--seeds", "-1"), ("--model", "nosuch"), ("--dataset", "nosuch"),
                  ("--epochs", "-1"), ("--out", "{f}/whole.pt"), ("--out", "/proc/results")]:
        add(f"compare-{'-'.join(extra)}", "compare", *extra)

    # general
    add("unknown-command", "nosuchcommand")
    add("analyze-no-model", "analyze")
    return out


CASES = cases()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    write_files(root)
    return root


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 100


@pytest.mark.parametrize(("name", "argv"), CASES, ids=[name for name, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(name: str, argv: tuple[str, ...], corpus: Path,
                                                          run_cli, monkeypatch) -> None:
    work = corpus / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    args = [a.replace("{f}", str(corpus / "files")).replace("{d}", str(work)) for a in argv]
    before = snapshot(corpus)
    result = run_cli(*args)
    result.assert_error()
    assert snapshot(corpus) == before, f"{name} changed files"
    assert not Path("/tmp/netgraph-bad-input-ran-code").exists(), "pickled code ran"
