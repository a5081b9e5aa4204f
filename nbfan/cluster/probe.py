"""Which nbfan a scheduler or worker can import. This module is pickled by value (it imports
only the standard library), so it runs on clusters that have no nbfan at all."""

from __future__ import annotations

import hashlib
import importlib
from typing import Any


def code_fingerprint(root: Any) -> str:
    """A hash of every .py file of the package under `root` (an `importlib.resources`
    Traversable: a folder or a zip), so two copies of the same code agree wherever they live."""
    digest = hashlib.sha256()
    stack: list[tuple[str, Any]] = [("", root)]
    files: list[tuple[str, Any]] = []
    while stack:
        prefix, folder = stack.pop()
        for entry in folder.iterdir():
            path = f"{prefix}/{entry.name}"
            if entry.is_dir():
                if entry.name != "__pycache__":
                    stack.append((path, entry))
            elif entry.name.endswith(".py"):
                files.append((path, entry))
    for path, entry in sorted(files, key=lambda item: item[0]):
        digest.update(path.encode() + b"\0" + entry.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def nbfan_here(**_: Any) -> tuple[str, str] | None:
    """(version, code fingerprint) of the nbfan this process imports; None when it has none.
    (`**_`: Dask passes `dask_worker` / `dask_scheduler` to functions that accept them.)"""
    try:  # importing the leaf `nbfan.version` imports the package too: proof that it imports here
        version = importlib.import_module("nbfan.version")
    except ImportError:
        return None
    from importlib.resources import files
    from importlib.util import find_spec

    package = find_spec("nbfan")  # the package just imported (its spec; nothing more is imported)
    roots = list(package.submodule_search_locations or []) if package is not None else []
    stale = _stale_module(roots)
    if stale:  # modules of another copy were imported before this one replaced it: a mix
        return str(version.__version__), f"mixed with {stale}"
    return str(version.__version__), code_fingerprint(files("nbfan"))


def _stale_module(roots: list[str]) -> str | None:
    """An imported `nbfan.*` module that does not come from the package's current location."""
    import sys

    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if name.startswith("nbfan.") and where and not any(where.startswith(root) for root in roots):
            return f"{name} from {where}"
    return None
