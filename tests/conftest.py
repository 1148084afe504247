"""Shared fixtures: a CLI runner and small models used by several test files."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

TESTS_DIR = Path(__file__).parent


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def assert_error(self, *needles: str) -> str:
        """Exit 2, one ``error:`` line on stderr holding every needle, no traceback."""
        assert self.code == 2, (self.code, self.stderr)
        assert "Traceback" not in self.stderr
        assert len(self.error_lines) == 1, self.stderr
        line = self.error_lines[0]
        assert line.startswith("error: ")
        for needle in needles:
            assert needle in line, line
        return line


@pytest.fixture(autouse=True)
def seeded_rngs() -> None:
    """Every test starts from the same random state, so a pass or a failure repeats
    on any machine instead of depending on the order tests ran in."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> None:
    """Run torch single-threaded for the test (restored after). The analysis issues many
    small ops; on a shared 2-core box two intra-op threads that wait for each other
    were measured 10-20x slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``run_cli("analyze", "mlp", ...)`` -> exit code and captured output of ``netgraph.cli.main``."""
    from netgraph.cli import main

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def tests_on_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the helper modules in ``tests/`` importable as ``module:factory`` model names."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    yield TESTS_DIR
    for name in [n for n in sys.modules if n.startswith("untraceable_model")]:
        del sys.modules[name]


@pytest.fixture
def mlp() -> nn.Sequential:
    """Linear(3,4) -> ReLU -> Linear(4,4) -> ReLU -> Linear(4,2), fixed random weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
