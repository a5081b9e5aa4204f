"""nbfan's exceptions. The names follow Modal's `modal.exception` so scripts port unchanged."""

from __future__ import annotations


class Error(Exception):
    """Base class of every error nbfan raises itself."""


class InvalidError(Error, ValueError):
    """An argument or option is malformed; raised before anything is submitted."""


class ResourceUnavailableError(InvalidError):
    """No worker of the cluster can run the function as its `gpu=`/`cpu=`/`memory=` ask."""


class NbfanWarning(UserWarning):
    """Base of every warning nbfan gives: `warnings.filterwarnings("ignore",
    category=nbfan.exception.NbfanWarning)` silences them all, "error" makes them errors."""


class PlacementWarning(NbfanWarning):
    """A resource option cannot be enforced on this cluster, or cannot be satisfied yet."""


class EmbeddedClusterWarning(NbfanWarning):
    """spawn_map on a cluster that lives inside this process: the work stops when it exits."""


class ClusterStateWarning(NbfanWarning):
    """The local cluster's state file was corrupt or stale (its cluster is gone): it was ignored."""


class NotFoundError(Error, LookupError):
    """A named object (deployed function, call id, volume...) does not exist."""


class ExecutionError(Error):
    """Something went wrong on the cluster outside the user's code."""


class ClusterConnectionError(Error, ConnectionError):
    """The Dask scheduler could not be reached."""


class FunctionTimeoutError(Error, TimeoutError):
    """A call ran past the function's `timeout=`."""


class SerializationError(Error, TypeError):
    """A function, argument, result or exception could not be pickled."""


class InputCancellation(Error):
    """The input was cancelled before it produced a result."""


class RemoteError(Error):
    """A remote exception that could not be pickled, carried as text.

    `type_name` is the original exception's qualified type name, `message` its str(),
    `remote_traceback` the formatted traceback from the worker.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str, str]]:  # keep the three fields across pickling
        return (RemoteError, (self.type_name, self.message, self.remote_traceback))


# Modal names that scripts catch; kept as aliases so `except modal.exception.X` works.
TimeoutError = FunctionTimeoutError
DeprecationError = InvalidError
VersionError = Error
AuthError = Error
ConnectionError = ClusterConnectionError


# More of Modal's names, so `except modal.exception.X` in ported scripts resolves.
class AlreadyExistsError(Error):
    """A named object exists already."""


class DeserializationError(Error):
    """A value from the cluster could not be unpickled here."""


class OutputExpiredError(Error):
    """A call's result is no longer kept on the cluster."""


InternalError = ExecutionError
ClientClosed = ClusterConnectionError
RequestSizeError = InvalidError
InteractiveTimeoutError = FunctionTimeoutError
SandboxTimeoutError = FunctionTimeoutError


def warn_caller(message: str, category: type[Warning]) -> None:
    """Warn, pointing at the user's line that called into nbfan (the first frame outside the
    package), however deep in nbfan the warning is raised."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the frame that called warn_caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)
