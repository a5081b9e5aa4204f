"""What travels between caller and worker: functions, inputs and outcomes as opaque blobs.

A task's inputs (a batch) and its outcomes are each one `Payload`: a cloudpickle blob, which
Dask ships as one frame where it would walk a list element by element, and beside it the large
buffers of the values in it (numpy arrays and other pickle protocol 5 buffers) as frames of
their own: Dask sends those without copying them into any blob, as it sends its own arrays.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

import cloudpickle
from dask.sizeof import sizeof

from nbfan.exception import InvalidError, RemoteError, SerializationError
from nbfan.worker.shared import SharedFrame
from nbfan.worker.shared import release as release_shared
from nbfan.worker.tracebacks import RemoteFrame, capture_frames, format_remote, pickle_function, remote_traceback_object

Args = tuple[tuple[Any, ...], dict[str, Any]]

INSTALLED_ROOTS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
)


@functools.lru_cache(maxsize=256)
def ship_module_by_value(module_name: str) -> bool:
    """User modules (a notebook, a script, a test file) travel by value: workers may not be
    able to import them. Installed packages and the stdlib travel by reference."""
    if module_name in ("__main__", "builtins") or module_name.split(".", maxsplit=1)[0] == "nbfan":
        return False
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or not path:
        return False
    real = os.path.realpath(path)
    if any(real.startswith(root + os.sep) for root in INSTALLED_ROOTS):
        return False
    cloudpickle.register_pickle_by_value(module)
    return True


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """Serialize a user function (with the globals it uses) or say why it cannot travel."""
    module = getattr(fn, "__module__", None)
    if module:
        ship_module_by_value(module)
    try:
        return pickle_function(fn)
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise SerializationError(
            f"function {name!r} could not be serialized to send it to the cluster ({type(exc).__name__}: {exc}). "
            f"Globals it uses must be picklable: create unpicklable objects (locks, open files, clients) "
            f"inside the function instead."
        ) from exc


def _describe_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Name the first argument that does not pickle."""
    for i, value in enumerate(args):
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            return f"argument {i} ({type(value).__name__}: {exc})"
    for key, value in kwargs.items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            return f"argument {key!r} ({type(value).__name__}: {exc})"
    return None


#: Buffers from this size up travel as frames of their own (smaller ones are cheaper in the blob).
OUT_OF_BAND_BYTES = 64 * 1024


class Frame:
    """A buffer that travels out of band: pickled (by Dask, protocol 5) as a PickleBuffer, so
    it is sent as a frame of its own and arrives without a copy."""

    __slots__ = ("data",)

    def __init__(self, data: memoryview) -> None:
        self.data = data

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def __reduce_ex__(self, protocol: object) -> tuple[type[Frame], tuple[object]]:
        if isinstance(protocol, int) and protocol >= 5:
            return Frame, (pickle.PickleBuffer(self.data),)
        return Frame, (bytes(self.data),)


@dataclass(frozen=True)
class Payload:
    """A pickled value: `blob`, and the large buffers of the values in it as `frames`."""

    blob: bytes
    frames: tuple[Frame | SharedFrame, ...] = ()
    #: a task's result: its inputs' shared-memory files (name, size) the worker no longer maps
    unmapped: tuple[tuple[str, int], ...] = ()

    @property
    def nbytes(self) -> int:
        return len(self.blob) + sum(frame.nbytes for frame in self.frames)

    @property
    def wire_bytes(self) -> int:
        """What Dask carries (and the scheduler may hold): all but the shared-memory frames."""
        return len(self.blob) + sum(frame.nbytes for frame in self.frames if isinstance(frame, Frame))

    @property
    def shared(self) -> tuple[str, ...]:
        """The names of its shared-memory files (the caller removes them when the task is over)."""
        return tuple(frame.name for frame in self.frames if isinstance(frame, SharedFrame))

    def to_bytes(self) -> bytes:
        """The value pickled in one blob (to keep it where only bytes go: the scheduler's map store)."""
        if not self.frames:
            return self.blob
        return cast(bytes, cloudpickle.dumps(loads(self), protocol=5))


sizeof.register(Payload)(lambda payload: payload.nbytes)  # Dask's memory accounting of task results


def dumps(
    value: object, *, snapshot: bool = True, share: Callable[[memoryview], SharedFrame | None] | None = None
) -> Payload:
    """Pickle `value`; buffers of OUT_OF_BAND_BYTES or more stay out of the blob. With
    `snapshot`, a writable buffer is copied once, here, so the payload is the value as it was
    (`f.spawn(frame)` then refilling `frame` must not change what the call gets; nor may a
    function that returns a buffer it refills), while Dask sends the frames later without
    copying. Without it (a blocking `.remote`, `.map`'s inputs, as raw Dask) the frames are
    views of the caller's arrays until they are sent. `share`: puts a buffer in shared memory
    (worker/shared.py), or says no (None): a copy that is a snapshot too."""
    frames: list[Frame | SharedFrame] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()
        if raw.nbytes < OUT_OF_BAND_BYTES:
            return True  # in the blob
        in_shared_memory = share(raw) if share is not None else None
        if in_shared_memory is not None:
            frames.append(in_shared_memory)
        else:
            frames.append(Frame(raw if raw.readonly or not snapshot else memoryview(bytearray(raw))))
        return False

    try:
        blob = cloudpickle.dumps(value, protocol=5, buffer_callback=out_of_band)
    except BaseException:
        release_shared([frame.name for frame in frames if isinstance(frame, SharedFrame)])
        raise
    return Payload(blob, tuple(frames))


def loads(data: bytes | Payload) -> Any:
    """The value of a Payload (its arrays are views of the frames it arrived in) or of a blob."""
    if isinstance(data, Payload):
        return cloudpickle.loads(data.blob, buffers=[frame.data for frame in data.frames])
    return cloudpickle.loads(data)


class Columns(Sequence[Args]):
    """A batch of inputs with the same number of positional arguments and the same keyword
    arguments (what `.map(xs, ys, kwargs=...)` makes): sent as one list per parameter, which
    pickles and unpickles several times faster than a pair of tuples per input. Reads as the
    (args, kwargs) pairs it stands for."""

    __slots__ = ("columns", "kwargs")

    def __init__(self, columns: tuple[list[Any], ...], kwargs: dict[str, Any]) -> None:
        self.columns = columns
        self.kwargs = kwargs

    @classmethod
    def of(cls, inputs: Sequence[Args]) -> Columns | None:
        """The batch as columns, or None when its inputs differ in shape or keyword arguments."""
        if len(inputs) < 2 or isinstance(inputs, Columns):
            return inputs if isinstance(inputs, Columns) else None
        args = list(map(itemgetter(0), inputs))  # C loops throughout: this runs for every batch
        kwargs = list(map(itemgetter(1), inputs))
        same_kwargs = len(set(map(id, kwargs))) == 1 or not any(kwargs)
        widths = set(map(len, args))
        if not same_kwargs or len(widths) != 1 or not args[0]:
            return None
        return cls(tuple(list(map(itemgetter(i), args)) for i in range(widths.pop())), kwargs[0])

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return tuple(column[index] for column in self.columns), self.kwargs

    def __iter__(self) -> Iterator[Args]:
        kwargs = self.kwargs
        return ((args, kwargs) for args in zip(*self.columns, strict=True))

    def __reduce__(self) -> tuple[type[Columns], tuple[tuple[list[Any], ...], dict[str, Any]]]:
        return Columns, (self.columns, self.kwargs)


def dumps_inputs(
    inputs: Sequence[Args], first_index: int = 0, *, check_size: bool = True, snapshot: bool = True,
    share: Callable[[memoryview], SharedFrame | None] | None = None,
) -> Payload:
    """Serialize a batch of (args, kwargs); name the argument that cannot be serialized, and
    refuse a batch over `nbfan.config.max_input_bytes` (it would sit in the scheduler's memory;
    `check_size=False` where it does not: a spawn_map scatters large inputs to the workers)."""
    try:
        payload = dumps(Columns.of(inputs) or list(inputs), snapshot=snapshot, share=share)
    except Exception as exc:
        for offset, (args, kwargs) in enumerate(inputs):
            what = _describe_arg(args, kwargs)
            if what:
                where = f"input {first_index + offset}: " if len(inputs) > 1 or first_index else ""
                raise SerializationError(
                    f"{where}{what} could not be serialized to send it to the cluster. "
                    f"Pass picklable values (numbers, strings, arrays, dataclasses...) or build the object inside "
                    f"the function."
                ) from exc
        raise SerializationError(f"inputs could not be serialized: {type(exc).__name__}: {exc}") from exc
    from nbfan.config import config

    if check_size and payload.wire_bytes > config.max_input_bytes:
        release_shared(payload.shared)
        where = f"input {first_index}" if len(inputs) == 1 else f"inputs {first_index}..{first_index + len(inputs) - 1}"
        raise InvalidError(
            f"{where}: the arguments are {payload.wire_bytes / 2**20:.0f} MiB pickled, over "
            f"nbfan.config.max_input_bytes "
            f"({config.max_input_bytes / 2**20:.0f} MiB). Arguments travel through the scheduler with every call: "
            f"put large data in a nbfan.Volume (or storage every worker reads) and pass its path, or raise "
            f"nbfan.config.max_input_bytes if you mean to ship it."
        )
    return payload


def _rebuild_exception(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """Rebuild an exception of its original type even when its __init__ takes other
    arguments than `args` (a common reason exceptions fail to unpickle)."""
    try:
        exc = cls(*args)
    except Exception:
        exc = cls.__new__(cls)
        exc.args = args
    if state:
        try:
            exc.__dict__.update(state)
        except Exception:
            pass
    return exc


@dataclass
class Failure:
    """An input's exception as it travels back: its type, args and attributes, or only its
    text (`exc_type` None) when those could not be pickled, and the user's remote frames."""

    exc_type: type[BaseException] | None
    exc_args: tuple[Any, ...]
    exc_state: dict[str, Any]
    type_name: str
    message: str
    traceback: str
    frames: tuple[RemoteFrame, ...] = ()

    @classmethod
    def capture(cls, exc: BaseException) -> Failure:
        frames = tuple(capture_frames(exc.__traceback__))
        state = {k: v for k, v in getattr(exc, "__dict__", {}).items() if k not in ("__notes__", "remote_traceback")}
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return cls(type(exc), tuple(exc.args), state, name, str(exc), format_remote(list(frames), exc), frames)

    def as_text_only(self) -> Failure:
        return Failure(None, (), {}, self.type_name, self.message, self.traceback, self.frames)

    def to_exception(self) -> BaseException:
        """The exception to raise here: its original type and attributes, its traceback made of
        the remote user frames (shown with their source lines like local ones), and the
        remote traceback's text as `.remote_traceback`."""
        if self.exc_type is not None:
            exc = _rebuild_exception(self.exc_type, self.exc_args, self.exc_state)
        else:
            exc = RemoteError(self.type_name, self.message, self.traceback)
        try:
            exc.remote_traceback = self.traceback  # type: ignore[attr-defined]
        except Exception:
            pass
        try:
            return exc.with_traceback(remote_traceback_object(list(self.frames)))
        except Exception:  # a frame that cannot be rebuilt must never hide the error itself
            return exc


def dumps_outcomes(outcomes: Sequence[tuple[bool, Any]], elapsed: float = 0.0) -> Payload:
    """Serialize a batch's outcomes, (True, value) or (False, Failure), with the seconds the
    batch took to compute. A value or exception that cannot be pickled is replaced by a
    Failure that says so, so one bad item never loses the rest of the batch."""
    try:
        return dumps((elapsed, outcomes))
    except Exception:
        pass
    safe: list[tuple[bool, Any]] = []
    for ok, value in outcomes:
        try:
            cloudpickle.dumps(value, protocol=5)
            safe.append((ok, value))
        except Exception as exc:
            if ok:
                err = SerializationError(
                    f"the function returned a {type(value).__module__}.{type(value).__qualname__}, which could not be "
                    f"serialized to send it back ({type(exc).__name__}: {exc}). Return picklable values."
                )
                safe.append((False, Failure.capture(err)))
            else:  # keep the type name, message and traceback as text: a RemoteError
                safe.append((False, value.as_text_only()))
    return dumps((elapsed, safe))


