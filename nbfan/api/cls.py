"""`@app.cls`: Modal's classes with `@modal.enter()` set-up and `@modal.method()` methods.

    @app.cls(gpu=1)
    class Model:
        name: str = modal.parameter(default="small")

        @modal.enter()
        def load(self): self.weights = load(self.name)     # once per worker process

        @modal.method()
        def predict(self, x): return self.weights(x)

    Model(name="big").predict.map(xs)

Each method is an nbfan Function whose worker-side callable builds the instance once per worker
process (per parameters and method) and runs the `@enter` methods then; later inputs reuse it.
`@modal.exit()` methods run when the worker retires the instance: after `scaledown_window`
seconds (Modal's default, 60) without an input, and when the worker process ends; the next
input builds it again. `startup_timeout=` bounds the `@enter` methods.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from nbfan.api import deployed
from nbfan.api.function import Function, Owner
from nbfan.engine.aio import static_twin
from nbfan.exception import InvalidError
from nbfan.worker import instances

if TYPE_CHECKING:
    from nbfan.api.decorators import GeneratorMethodOf, MethodDecorator, MethodOf

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_NO_DEFAULT = object()


class _Parameter:
    def __init__(self, default: Any = _NO_DEFAULT) -> None:
        self.default = default


@overload
def parameter(*, default: T, init: bool = True) -> T: ...
@overload
def parameter(*, init: bool = True) -> Any: ...


def parameter(*, default: Any = _NO_DEFAULT, init: bool = True) -> Any:
    """A constructor parameter of an `@app.cls` class: `name: str = modal.parameter(default="x")`.
    Type checkers see the class's constructor take its parameters as keywords (`Model(name="x")`)."""
    return _Parameter(default)


def _mark(flag: str, f: Any) -> Any:
    setattr(f, flag, True)
    return f


@overload
def method(_f: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]) -> MethodOf[P, R]: ...
@overload
def method(_f: Callable[Concatenate[Any, P], Iterator[R]]) -> GeneratorMethodOf[P, R]: ...
@overload
def method(_f: Callable[Concatenate[Any, P], R]) -> MethodOf[P, R]: ...
@overload
def method(_f: None = None, **options: Any) -> MethodDecorator: ...


def method(_f: Any = None, **options: Any) -> Any:
    """Modal's `@modal.method()`: the method is called remotely on an instance,
    `Model(p=1).predict.remote(x)`, with the types of `predict` after `self`."""
    return _mark("_nbfan_method", _f) if callable(_f) else functools.partial(_mark, "_nbfan_method")


@overload
def enter(_f: F) -> F: ...
@overload
def enter(_f: None = None, **options: Any) -> Callable[[F], F]: ...


def enter(_f: Any = None, **options: Any) -> Any:
    """Modal's `@modal.enter()`: run once per worker process when the instance is made, before its
    first input (load the model here)."""
    return _mark("_nbfan_enter", _f) if callable(_f) else functools.partial(_mark, "_nbfan_enter")


@overload
def exit(_f: F) -> F: ...
@overload
def exit(_f: None = None, **options: Any) -> Callable[[F], F]: ...


def exit(_f: Any = None, **options: Any) -> Any:
    """Modal's `@modal.exit()`: run when the worker retires the instance (idle for the class's
    `scaledown_window`, or the worker process ends): release what `@enter` took."""
    return _mark("_nbfan_exit", _f) if callable(_f) else functools.partial(_mark, "_nbfan_exit")


def _parameters(user_cls: type) -> dict[str, Any]:
    return {k: v.default for k, v in vars(user_cls).items() if isinstance(v, _Parameter)}


def _instantiate(user_cls: type, params: dict[str, Any], startup_timeout: float | None = None) -> Any:
    declared = _parameters(user_cls)
    if declared:
        obj: Any = object.__new__(user_cls)
        for name, default in declared.items():
            value = params.get(name, default)
            if value is _NO_DEFAULT:
                raise InvalidError(f"{user_cls.__name__}() needs the parameter {name!r}")
            setattr(obj, name, value)
    else:
        obj = user_cls(**params)
    with instances.deadline(startup_timeout, f"@enter of {user_cls.__name__}"):
        for name in _marked(user_cls, "_nbfan_enter"):
            getattr(obj, name)()
    return obj


def _marked(user_cls: type, flag: str) -> list[str]:
    return [name for name in dir(user_cls) if getattr(getattr(user_cls, name, None), flag, False)]


class _MethodCall:
    """The callable a method's Function runs: the instance is made on first use in each
    process (the worker keeps this object in its function cache, so later inputs reuse it)."""

    def __init__(self, user_cls: type, params: dict[str, Any], method_name: str, options: Any = None) -> None:
        self.user_cls = user_cls
        self.params = params
        self.method_name = method_name
        extra = getattr(options, "extra", None) or {}
        self.startup_timeout: float | None = extra.get("startup_timeout")
        scaling = getattr(options, "scaling", None)
        self.idle_seconds: float | None = scaling.scaledown_window if scaling is not None else None
        self.__module__ = user_cls.__module__
        self.__qualname__ = f"{user_cls.__qualname__}.{method_name}"
        self.__name__ = method_name
        self.__doc__ = getattr(user_cls, method_name).__doc__
        self._instance: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_instance", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._instance = None
        self._lock = threading.Lock()

    def instance(self) -> Any:
        with self._lock:
            if self._instance is None:
                obj = self._instance = _instantiate(self.user_cls, self.params, self.startup_timeout)
                exits = [getattr(obj, name) for name in _marked(self.user_cls, "_nbfan_exit")]
                instances.keep(self, exits, self.idle_seconds, self._forget)
            return self._instance

    def _forget(self) -> None:
        with self._lock:
            self._instance = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self.instance()
        with instances.using(self):  # not retired while this input runs
            return getattr(obj, self.method_name)(*args, **kwargs)

    @property
    def max_batch_size(self) -> int | None:
        """A `@batched` method's list size (None for other methods)."""
        return getattr(getattr(self.user_cls, self.method_name), "max_batch_size", None)

    def nbfan_gatherer(self) -> Any:
        """The gatherer of a `@batched` method's inputs (None for other methods): a task hands
        it all its inputs at once (`worker/runners.py`)."""
        if not hasattr(getattr(self.user_cls, self.method_name), "nbfan_gatherer"):
            return None  # a plain method: nothing to build for this question (@enter may fail, per input)
        method = getattr(self.instance(), self.method_name)
        gatherer = getattr(method, "nbfan_gatherer", None)
        return gatherer() if gatherer is not None else None


class Cls:
    """What `@app.cls` returns: call it (with parameters) to get an object whose methods are
    Functions (`Model().predict.remote(x)`)."""

    def __init__(self, user_cls: type, app: Owner | None, options: Any) -> None:
        self.user_cls = user_cls
        self.app = app
        self.options = options
        self.methods = [n for n in dir(user_cls) if getattr(getattr(user_cls, n, None), "_nbfan_method", False)]
        if not self.methods:
            raise InvalidError(f"@app.cls class {user_cls.__name__} has no @modal.method() methods to call")
        self.__name__ = user_cls.__name__
        self.__doc__ = user_cls.__doc__

    def __repr__(self) -> str:
        return f"<nbfan.Cls {self.user_cls.__name__} methods={self.methods}>"

    @static_twin
    def from_name(app_name: str, name: str, *, environment_name: str | None = None) -> Cls:
        """A class `nbfan deploy` registered on the cluster (`Model = nbfan.Cls.from_name("app",
        "Model")`, then `Model(p=1).method.remote(x)`); NotFoundError lists what is deployed."""
        user_cls, options = deployed.lookup_cls(app_name, name)
        return Cls(user_cls, None, options)

    lookup = from_name  # Modal's older name

    def __call__(self, **params: Any) -> ClsObject:
        """The class with these parameters (`Model(name="big")`), checked against its `modal.parameter()`s."""
        declared = _parameters(self.user_cls)
        unknown = sorted(set(params) - set(declared)) if declared else []
        if unknown:
            raise InvalidError(
                f"{self.user_cls.__name__}() got unknown parameter(s) {', '.join(unknown)}; "
                f"declared: {', '.join(declared)}"
            )
        return ClsObject(self, params)

    def with_options(self, **options: Any) -> Cls:
        """A copy whose methods run with some options changed (gpu=, timeout=...)."""
        merged = Function(lambda: None, self.options).with_options(**options).options
        return Cls(self.user_cls, self.app, merged)


class ClsObject:
    """An `@app.cls` class with its parameters: attributes are the methods, as Functions."""

    def __init__(self, cls: Cls, params: dict[str, Any]) -> None:
        self._cls = cls
        self._params = params
        self._functions: dict[str, Function[Any, Any]] = {}
        for name in cls.methods:
            call = _MethodCall(cls.user_cls, params, name, cls.options)
            function: Function[Any, Any] = Function(call, cls.options, cls.app, name=call.__qualname__)
            # a generator method streams its yields (.remote_gen, flat .map), as in Modal
            function.is_generator = inspect.isgeneratorfunction(getattr(cls.user_cls, name))
            self._functions[name] = function

    def __getattr__(self, name: str) -> Any:
        functions = self.__dict__.get("_functions", {})
        if name in functions:
            return functions[name]
        raise AttributeError(
            f"{self._cls.user_cls.__name__} has no @modal.method() {name!r} (methods: {self._cls.methods})"
        )
