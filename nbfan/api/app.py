"""`App` (alias `Stub`): a named group of functions, the decorators that make them, and
`local_entrypoint`s for `nbfan run`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from nbfan.api.cls import Cls
from nbfan.api.function import Function, GeneratorFunction
from nbfan.api.options import parse_options
from nbfan.exception import InvalidError

if TYPE_CHECKING:
    from nbfan.api.decorators import ClsOf, FunctionDecorator

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")


class App:
    """A named collection of functions. `image`, `secrets` and `volumes` given here apply to
    every function of the app (a function's own options win)."""

    def __init__(self, name: str | None = None, *, image: Any = None, secrets: list[Any] | None = None,
                 volumes: dict[str, Any] | None = None, **_modal_options: Any) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidError(f"App name must be a non-empty string, got {name!r}")
        self.name = name
        self.image = image
        self._defaults = {"image": image, "secrets": secrets, "volumes": volumes}
        self.registered_functions: dict[str, Function[Any, Any]] = {}
        self.registered_entrypoints: dict[str, Callable[..., Any]] = {}
        self.registered_classes: dict[str, Cls] = {}

    def __repr__(self) -> str:
        return f"<nbfan.App {self.name!r} functions={sorted(self.registered_functions)}>"

    def _options(self, options: dict[str, Any]) -> Any:
        merged = {k: v for k, v in self._defaults.items() if v is not None}
        merged.update({k: v for k, v in options.items() if v is not None or k not in merged})
        return parse_options(**merged)

    def _register(self, raw_f: Any, options: dict[str, Any], *, require_generator: bool) -> Function[Any, Any]:
        if isinstance(raw_f, Function):
            raw_f = raw_f.raw_f
        if not callable(raw_f) or isinstance(raw_f, type):
            raise InvalidError(f"@app.function decorates a function; got {raw_f!r}")
        if require_generator and not (inspect.isgeneratorfunction(raw_f) or inspect.isasyncgenfunction(raw_f)):
            raise InvalidError(
                f"@app.generator decorates generator functions (with `yield`); {raw_f.__name__} is not one"
            )
        kind = GeneratorFunction if inspect.isgeneratorfunction(raw_f) else Function
        function = kind(raw_f, self._options(options), self)
        self.registered_functions[function.name] = function
        return function

    @overload
    def function(self, _f: Callable[P, Coroutine[Any, Any, R]]) -> Function[P, R]: ...
    @overload
    def function(self, _f: Callable[P, Iterator[R]]) -> GeneratorFunction[P, R]: ...
    @overload
    def function(self, _f: Callable[P, R]) -> Function[P, R]: ...
    @overload
    def function(self, _f: None = None, **options: Any) -> FunctionDecorator: ...

    def function(self, _f: Any = None, **options: Any) -> Any:
        """Register a function to run on the cluster: `@app.function` or `@app.function(gpu=1, ...)`.

        Options (validated here, before anything runs): gpu, cpu, memory, concurrency_limit
        (alias max_containers), retries, timeout, secrets, image, volumes."""
        if _f is not None:
            return self._register(_f, options, require_generator=False)
        parse_options(**options)  # fail at the decorator line, not at the def below it
        return lambda f: self._register(f, options, require_generator=False)

    @overload
    def generator(self, _f: Callable[P, Iterator[R]]) -> GeneratorFunction[P, R]: ...
    @overload
    def generator(self, _f: None = None, **options: Any) -> FunctionDecorator: ...

    def generator(self, _f: Any = None, **options: Any) -> Any:
        """Register a generator function: `.remote_gen()` streams its yields, `.map()` flat-maps."""
        if _f is not None:
            return self._register(_f, options, require_generator=True)
        parse_options(**options)
        return lambda f: self._register(f, options, require_generator=True)

    def local_entrypoint(self, _f: Any = None, *, name: str | None = None) -> Any:
        """Mark the function `nbfan run FILE.py` calls; its typed parameters become CLI options."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(f):
                raise InvalidError(f"@app.local_entrypoint decorates a function; got {f!r}")
            self.registered_entrypoints[name or f.__name__] = f
            return f

        return register(_f) if _f is not None else register


    @overload
    def cls(self, _cls: type[C]) -> ClsOf[C]: ...
    @overload
    def cls(self, _cls: None = None, **options: Any) -> Callable[[type[C]], ClsOf[C]]: ...

    def cls(self, _cls: Any = None, **options: Any) -> Any:
        """Modal's `@app.cls(...)`: a class with `@modal.enter()` set-up and `@modal.method()`
        methods, called as `Model(param=...).method.remote(x)` (see nbfan/api/cls.py).

        Type checkers see `Model(...)` make an instance of the class, whose methods are Functions
        of the methods' types; the parameters given to `Model(...)` are checked when it is
        called, not by them."""
        if _cls is not None:
            return self._register_cls(_cls, options)
        parse_options(**options)
        return lambda c: self._register_cls(c, options)

    def _register_cls(self, user_cls: Any, options: dict[str, Any]) -> Cls:
        if not isinstance(user_cls, type):
            raise InvalidError(f"@app.cls decorates a class; got {user_cls!r}")
        cls = Cls(user_cls, self, self._options(options))
        self.registered_classes[user_cls.__name__] = cls
        return cls

    def run(self, *, detach: bool = False, show_progress: bool | None = None, **_modal_options: Any) -> Any:
        """`with app.run(): ...` (Modal's way to run a script's calls): yields the app; on the way
        out, work spawned inside the block is cancelled unless `detach=True`."""
        from nbfan.api.session import app_run

        return app_run(self, detach=detach)


#: The older name for App, still used by many scripts.
Stub = App
