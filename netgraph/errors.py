"""User-facing errors: each carries one line that the CLI prints verbatim."""

from __future__ import annotations


class NetgraphError(Exception):
    """A problem with the user's input (model, checkpoint, data, options).

    The CLI prints ``str(error)`` as a single line on stderr and exits with
    :data:`EXIT_ERROR`; library users can catch it like any exception.
    """


class TraceError(NetgraphError):
    """The model could not be turned into a channel graph."""


class CheckpointError(NetgraphError):
    """A checkpoint is missing, corrupt, unsafe or does not match the model."""


EXIT_OK = 0
EXIT_ERROR = 2
EXIT_DISCONNECTED = 3
