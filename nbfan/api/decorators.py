"""What type checkers see of the decorators that make Functions (`@app.function(...)`,
`@app.cls`, `@modal.method()`): they keep the decorated callable's types. Apart from
`signatures.py` (the call methods a Function has), since these ones know Function."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from nbfan.api.function import Function, GeneratorFunction

P = ParamSpec("P")
R = TypeVar("R")
C_co = TypeVar("C_co", covariant=True)


class FunctionDecorator(Protocol):
    """`@app.function(...)` with options: keeps the decorated function's types, as without."""

    @overload
    def __call__(self, f: Callable[P, Coroutine[Any, Any, R]], /) -> Function[P, R]: ...
    @overload
    def __call__(self, f: Callable[P, Iterator[R]], /) -> GeneratorFunction[P, R]: ...
    @overload
    def __call__(self, f: Callable[P, R], /) -> Function[P, R]: ...


class MethodOf(Protocol[P, R]):
    """A `@modal.method()` of an `@app.cls` class: on an instance (`Model(p=1).predict`), a
    Function of the method's parameters after `self`."""

    def __get__(self, obj: object, owner: type | None = None, /) -> Function[P, R]: ...


class GeneratorMethodOf(MethodOf[P, Iterator[R]], Protocol[P, R]):
    """A generator `@modal.method()`: on an instance, a GeneratorFunction of its yields."""

    def __get__(self, obj: object, owner: type | None = None, /) -> GeneratorFunction[P, R]: ...


class ClsOf(Protocol[C_co]):
    """What `@app.cls` makes of a class: called with its `modal.parameter()` values (checked at
    run time), an instance whose `@modal.method()`s are Functions."""

    def __call__(self, **params: Any) -> C_co: ...
    def with_options(self, **options: Any) -> ClsOf[C_co]: ...


class MethodDecorator(Protocol):
    """`@modal.method()` with parentheses (and options): keeps the method's types."""

    @overload
    def __call__(self, f: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> MethodOf[P, R]: ...
    @overload
    def __call__(self, f: Callable[Concatenate[Any, P], Iterator[R]], /) -> GeneratorMethodOf[P, R]: ...
    @overload
    def __call__(self, f: Callable[Concatenate[Any, P], R], /) -> MethodOf[P, R]: ...
