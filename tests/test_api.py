"""The public Python API: what ``import netgraph`` offers, that it loads lazily, and
that every public name documents itself with examples that run."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import netgraph as ng

README = Path(__file__).resolve().parent.parent / "README.md"
PUBLIC = sorted(set(ng.__all__) - {"__version__", "METHODS"})


def test_the_curated_names_are_exported_and_resolve() -> None:
    assert set(ng.__all__) - {"__version__"} == set(ng._EXPORTS)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", ng.__version__)
    for name in ng.__all__:
        assert getattr(ng, name) is not None
    assert set(ng.METHODS) >= {"random", "magnitude", "snip", "grasp", "synflow", "connect"}
    with pytest.raises(AttributeError):
        ng.no_such_name  # noqa: B018


def test_importing_training_loads_neither_the_tracer_nor_torch_pruning() -> None:
    """A clean interpreter: dependencies run downhill."""
    code = ("import sys, netgraph.training, netgraph.parameters; "
            "print(sorted(m for m in ('netgraph.graph.tracer', 'torch_pruning', 'netgraph.pruning') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_numpydoc_docstring_with_examples_that_run(name: str) -> None:
    obj = getattr(ng, name)
    doc = inspect.getdoc(obj) or ""
    assert "Examples\n--------" in doc, f"{name} has no Examples section"
    if inspect.isfunction(obj):
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc, name
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(obj, name, globs={}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0, name


def readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_python_blocks() -> None:
    assert len(readme_python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_readme_python_blocks_run_as_written(index: int, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = readme_python_blocks()[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
