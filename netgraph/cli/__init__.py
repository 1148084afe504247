"""The ``netgraph`` command line: one module per sub-command, one error policy.

Every user error (:class:`~netgraph.errors.NetgraphError`) becomes one line on
stderr and exit code 2, with the library's parameter names (``input_shape=``)
spoken as the flags that set them (``--input-shape``); anything unexpected
becomes one line too (``NETGRAPH_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import re
import sys

import typer
from typer.exceptions import TyperException

from netgraph.cli import analyze, compare, lm, plot, prune, train  # noqa: F401  (each module registers its commands)
from netgraph.cli.app import app
from netgraph.errors import EXIT_ERROR, NetgraphError
from netgraph.text import first_line

#: How a library message names a parameter -> the flag that sets it on the command line.
FLAGS = {
    "unsafe_pickle=True": "--unsafe-pickle",
    "download=True": "--download",
    "download=False": "no --download",
    "data_root=DIR": "--data-root DIR",
    "data_root": "--data-root",
    "leaf_modules=[...]": "--leaf NAME",
    "input_shape=": "--input-shape",
    "input_shape": "--input-shape",
    "num_classes": "--num-classes",
    "out=": "--out",
    "force=True": "--force",
    "resume=True": "--resume",
    "protocols=": "--protocols",
    "head_ratio": "--pruning-ratio",
    "jobs=1": "--jobs 1",
    "jobs": "--jobs",
}
_PARAMETER = re.compile(
    r"(?<![\w\"-])(?:" + "|".join(re.escape(k) for k in sorted(FLAGS, key=len, reverse=True)) + r")(?![\w\[=])"
)


def as_flags(message: str) -> str:
    """A library message with its parameter names replaced by the CLI's flags.

    >>> as_flags("pass data_root=DIR, or download=True")
    'pass --data-root DIR, or --download'
    """
    return _PARAMETER.sub(lambda m: FLAGS[m.group(0)], message)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising (for tests and scripts)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # bare ``netgraph``: the help, and success
        args = ["--help"]
    debug = os.environ.get("NETGRAPH_DEBUG", "") not in ("", "0")
    _log_to_stderr()
    try:
        result = app(args=args, standalone_mode=False, prog_name="netgraph")
    except NetgraphError as error:
        print(f"error: {as_flags(first_line(error, '(no message)'))}", file=sys.stderr)
        return EXIT_ERROR
    except typer.Exit as stop:
        return int(stop.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return 130
    except TyperException as error:  # usage errors: bad option values, unknown commands
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        print(f"error: {first_line(message, '(no message)')} (see --help)", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # noqa: BLE001 - the one place unexpected errors are reported
        if debug:
            raise
        print(f"error: {type(error).__name__}: {first_line(error, '(no message)')}", file=sys.stderr)
        return 1
    return int(result) if isinstance(result, int) else 0


def _log_to_stderr() -> None:
    """The library logs progress notes (``netgraph.*`` loggers); the CLI shows them on stderr."""
    package = logging.getLogger("netgraph")
    if not package.handlers:
        handler = logging.StreamHandler()  # resolves sys.stderr at each write (captured in tests)
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.INFO)


def entrypoint() -> None:
    sys.exit(main())
