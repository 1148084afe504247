"""The ``netgraph`` command line: one module per sub-command, one error policy.

Every user error (:class:`~netgraph.errors.NetgraphError`) becomes one line on
stderr and exit code 2; anything unexpected becomes one line too (set
``NETGRAPH_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from netgraph.cli import analyze, compare, plot, prune, train  # noqa: F401,E402  (each module registers its commands)
from netgraph.cli.app import app
from netgraph.errors import EXIT_ERROR, NetgraphError
from netgraph.text import first_line


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising (for tests and scripts)."""
    try:
        result = app(args=argv, standalone_mode=False)
    except NetgraphError as error:
        print(f"error: {first_line(error, '(no message)')}", file=sys.stderr)
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
        if os.environ.get("NETGRAPH_DEBUG"):
            raise
        print(f"error: {type(error).__name__}: {first_line(error, '(no message)')}", file=sys.stderr)
        return 1
    return int(result) if isinstance(result, int) else 0


def entrypoint() -> None:
    sys.exit(main())
