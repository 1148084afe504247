"""User-facing errors: each carries one line that the CLI prints verbatim."""

from __future__ import annotations


class NetgraphError(Exception):
    """A problem with the user's input (model, checkpoint, data, options).

    Its message is one line that names the parameter at fault as the function
    takes it (``input_shape=``); the CLI prints it with the flag instead
    (``--input-shape``) and exits with :data:`EXIT_ERROR`. Library users catch it
    like any exception.

    Examples
    --------
    >>> import netgraph as ng
    >>> try:
    ...     ng.build_model("no-such-model")
    ... except ng.NetgraphError as error:
    ...     print(str(error)[:34])
    unknown model 'no-such-model': cho
    """


class TraceError(NetgraphError):
    """The model could not be turned into a channel graph."""


class CheckpointError(NetgraphError):
    """A checkpoint is missing, corrupt, unsafe or does not match the model."""


EXIT_OK = 0
EXIT_ERROR = 2
EXIT_DISCONNECTED = 3
