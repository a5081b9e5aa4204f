"""`nbfan run FILE.py[::ENTRY]`: load a script as a module, pick its `@app.local_entrypoint()`,
turn the entrypoint's typed parameters into command-line options, and run it.

The script is imported under its own name (not `__main__`, so its `if __name__ == "__main__":`
block does not run), and it and the modules beside it travel to workers by value.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import importlib.util
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from nbfan.api.app import App
from nbfan.api.function import Function
from nbfan.exception import InvalidError, NotFoundError
from nbfan.worker.payload import INSTALLED_ROOTS

SUPPORTED_TYPES: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    bool: bool,
    _dt.datetime: _dt.datetime.fromisoformat,
}
_BY_NAME = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "datetime": _dt.datetime,
    "datetime.datetime": _dt.datetime,
}


def split_target(target: str) -> tuple[str, str | None]:
    """'job.py::main' -> ('job.py', 'main')."""
    path, sep, entry = target.partition("::")
    return path, (entry or None) if sep else None


def load_script(path: str, argv: list[str] | None = None) -> ModuleType:
    """Import FILE.py as a module named after the file; its folder goes first on sys.path."""
    file = Path(path).expanduser()
    if file.suffix != ".py":
        raise InvalidError(f"{path}: nbfan runs Python files; give a FILE.py (optionally FILE.py::ENTRYPOINT)")
    if not file.is_file():
        raise NotFoundError(f"{path}: no such file")
    file = file.resolve()
    name = (
        file.stem
        if file.stem.isidentifier()
        else "_".join(filter(None, "".join(c if c.isalnum() else " " for c in file.stem).split()))
    )
    if not name or name in sys.modules or name[0].isdigit():
        name = f"nbfan_script_{name}"
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.argv = [str(file), *(argv or [])]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _ship_local_modules(folder)
    return module


def _ship_local_modules(folder: str) -> None:
    """The script and the modules it imported from beside it travel to workers by value
    (workers cannot import them)."""
    prefix = os.path.realpath(folder) + os.sep
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if not path or mod.__name__.split(".")[0] == "nbfan":
            continue
        real = os.path.realpath(path)
        if real.startswith(prefix) and not any(real.startswith(root + os.sep) for root in INSTALLED_ROOTS):
            try:
                cloudpickle.register_pickle_by_value(mod)
            except ValueError:
                pass


def find_apps(module: ModuleType) -> list[App]:
    """The module's App objects (module-level names), in definition order, without duplicates."""
    apps: list[App] = []
    for value in vars(module).values():
        if isinstance(value, App) and all(value is not a for a in apps):
            apps.append(value)
    return apps


@dataclass
class Entry:
    """What `nbfan run` calls: a local entrypoint (called here) or a function (called with .remote)."""

    name: str
    target: Callable[..., Any]
    remote: bool

    @property
    def signature_of(self) -> Callable[..., Any]:
        return self.target.raw_f if isinstance(self.target, Function) else self.target


def choose_entry(module: ModuleType, path: str, wanted: str | None) -> Entry:
    apps = find_apps(module)
    entrypoints: dict[str, Callable[..., Any]] = {}
    functions: dict[str, Function[Any, Any]] = {}
    for app in apps:
        entrypoints.update(app.registered_entrypoints)
        functions.update(app.registered_functions)
    listing = (
        f"entrypoints: {', '.join(sorted(entrypoints)) or 'none'}; functions: {', '.join(sorted(functions)) or 'none'}"
    )
    if not apps:
        raise InvalidError(f"{path} defines no nbfan.App (app = nbfan.App('name') at module level)")
    if wanted is not None:
        short = wanted.rsplit(".", 1)[-1]  # accept `app.main` as Modal does
        if short in entrypoints:
            return Entry(short, entrypoints[short], remote=False)
        if short in functions:
            return Entry(short, functions[short], remote=True)
        raise InvalidError(f"{path} has no entrypoint or function named {wanted!r} ({listing})")
    if len(entrypoints) == 1:
        name, fn = next(iter(entrypoints.items()))
        return Entry(name, fn, remote=False)
    if len(entrypoints) > 1:
        raise InvalidError(f"{path} has several entrypoints; pick one with {path}::NAME ({listing})")
    if len(functions) == 1:
        name, f = next(iter(functions.items()))
        return Entry(name, f, remote=True)
    raise InvalidError(
        f"{path} has no @app.local_entrypoint(); add one, or pick a function to run with {path}::NAME ({listing})"
    )


def _option_type(name: str, annotation: Any, default: Any) -> Any:
    if annotation is inspect.Parameter.empty:
        return (
            type(default)
            if default not in (inspect.Parameter.empty, None) and type(default) in SUPPORTED_TYPES
            else str
        )
    if isinstance(annotation, str):
        text = annotation.replace("typing.", "").replace(" ", "")
        text = text.removeprefix("Optional[").removesuffix("]") if text.startswith("Optional[") else text
        annotation = _BY_NAME.get(text.removesuffix("|None"), annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:  # Optional[X], X | None
        annotation = args[0]
    if annotation not in SUPPORTED_TYPES:
        raise InvalidError(
            f"entrypoint parameter {name!r} has type {annotation!r}: command-line options support str, int, float, "
            f"bool and datetime; give it one of those (and parse it inside the entrypoint)"
        )
    return annotation


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return dict(getattr(fn, "__annotations__", {}))


def build_parser(entry: Entry, prog: str) -> argparse.ArgumentParser:
    """An argparse parser with one option per parameter of the entry (`--n 20`, `--flag/--no-flag`)."""
    fn = entry.signature_of
    parser = argparse.ArgumentParser(prog=prog, description=inspect.getdoc(fn) or None, allow_abbrev=False)
    hints = _hints(fn)
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        kind = _option_type(param.name, hints.get(param.name, param.annotation), param.default)
        flags = [f"--{param.name}"] + ([f"--{param.name.replace('_', '-')}"] if "_" in param.name else [])
        required = param.default is inspect.Parameter.empty
        extra: dict[str, Any] = {"dest": param.name, "required": required}
        if not required:
            extra["default"] = param.default
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, help="(bool)", **extra)
        else:
            parser.add_argument(*flags, type=SUPPORTED_TYPES[kind], metavar=kind.__name__.upper(),
                                help=f"({kind.__name__}{'' if required else f', default {param.default!r}'})", **extra)
    return parser


def parse_entry_args(entry: Entry, argv: list[str], prog: str) -> dict[str, Any]:
    return vars(build_parser(entry, prog).parse_args(argv))


def call_entry(entry: Entry, kwargs: dict[str, Any]) -> Any:
    """Run the entry: entrypoints here (`async def` ones on a fresh event loop), functions remotely."""
    if entry.remote:
        fn = entry.target
        assert isinstance(fn, Function)
        if fn.is_generator:
            return list(fn.remote_gen(**kwargs))
        return fn.remote(**kwargs)
    result = entry.target(**kwargs)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return result
