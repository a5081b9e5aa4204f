"""The import graph of the package follows DESIGN.md's arrows: notebook/server/cli -> api ->
objects -> engine -> worker/scheduler/cluster -> keys/config/exception/compat/version -> Dask,
with the public package (`nbfan/__init__.py`) and Modal's module names (nbfan.dict, nbfan.queue,
nbfan.volume) on top. Checked by parsing every module, with no exception list: every import
counts (inside functions, under `if TYPE_CHECKING:`, `importlib.import_module("nbfan...")`), every
module has a layer, nothing imports upward or sideways across the lower packages, no module
touches another module's private names (`from m import _x`, `m._x`, `getattr(m, "_x")`), and there
is no import cycle."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "nbfan"

LAYERS: dict[str, int] = {
    "nbfan.keys": 0, "nbfan.config": 0, "nbfan.exception": 0, "nbfan.compat": 0, "nbfan.compat_logs": 0, "nbfan.version": 0,
    "nbfan.worker": 1, "nbfan.scheduler": 1, "nbfan.cluster": 1,
    "nbfan.engine": 2,
    "nbfan.objects": 3,
    "nbfan.api": 4,
    "nbfan.notebook": 5, "nbfan.server": 5, "nbfan.cli": 5,
    # the public API and Modal's module names (`import nbfan.dict`): nothing in the package imports them
    "nbfan": 6, "nbfan.dict": 6, "nbfan.queue": 6, "nbfan.volume": 6,
}
DYNAMIC_IMPORTS = {"import_module", "__import__"}  # importlib.import_module("nbfan.x"), __import__("nbfan.x")


@dataclass(frozen=True)
class Import:
    """One module an import statement (or call) loads: `target` is the module (a
    `from package import submodule` loads the submodule), `names` what it takes from it."""

    target: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts}


def unit(module: str) -> str | None:
    """The entry of LAYERS a module belongs to (its package under nbfan, or itself); None if none
    (`nbfan` is the package's own `__init__.py`, not a prefix of every module)."""
    if module == "nbfan":
        return module
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in LAYERS:
            return ".".join(parts[:n])
    return None


def layer(module: str) -> int:
    found = unit(module)
    assert found is not None, f"{module} has no layer"
    return LAYERS[found]


def _is_nbfan(module: str) -> bool:
    return module.split(".")[0] == "nbfan"


def _dynamic_target(node: ast.Call) -> str | None:
    """The module of `importlib.import_module("nbfan.x")` / `__import__("nbfan.x")`."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called in DYNAMIC_IMPORTS and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        if isinstance(value, str) and _is_nbfan(value):
            return value
    return None


def imports(tree: ast.AST, modules: set[str]) -> list[Import]:
    """Every nbfan module the code loads, at any depth (functions, `if TYPE_CHECKING:`, dynamic
    imports of a literal name). `<relative>` for a relative import."""
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(a.name, (), node.lineno) for a in node.names if _is_nbfan(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append(Import("<relative>", tuple(a.name for a in node.names), node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and _is_nbfan(node.module):
            submodules = [a.name for a in node.names if f"{node.module}.{a.name}" in modules]
            found += [Import(f"{node.module}.{n}", (), node.lineno) for n in submodules]
            names = tuple(a.name for a in node.names if a.name not in submodules)
            if names:
                found.append(Import(node.module, names, node.lineno))
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)) is not None:
            found.append(Import(target, (), node.lineno))
    return found


def _bound_modules(tree: ast.AST, modules: set[str]) -> dict[str, str]:
    """{name in this file: the nbfan module it holds} for `import nbfan.x [as m]`,
    `from nbfan.x import submodule [as m]` and `m = importlib.import_module("nbfan.x")`."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_nbfan(a.name):
                    bound[a.asname or "nbfan"] = a.name if a.asname else "nbfan"
        elif isinstance(node, ast.ImportFrom) and node.module and _is_nbfan(node.module) and not node.level:
            for a in node.names:
                if f"{node.module}.{a.name}" in modules:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            target = _dynamic_target(node.value)
            if target is not None:
                bound.update({t.id: target for t in node.targets if isinstance(t, ast.Name)})
    return bound


def _module_of(expr: ast.expr, bound: dict[str, str], modules: set[str]) -> str | None:
    """The nbfan module an expression names (`progress`, `nbfan.engine.progress`), or None."""
    if isinstance(expr, ast.Name):
        return bound.get(expr.id)
    if isinstance(expr, ast.Attribute):
        outer = _module_of(expr.value, bound, modules)
        if outer is not None and f"{outer}.{expr.attr}" in modules:
            return f"{outer}.{expr.attr}"
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(tree: ast.AST, own: str, modules: set[str]) -> list[tuple[int, str]]:
    """(line, what) for each use of another nbfan module's private name: `from m import _x`,
    `m._x` and `getattr(m, "_x")` (also setattr/hasattr/delattr)."""
    found = []
    for imp in imports(tree, modules):
        private = [n for n in imp.names if _private(n)]
        if private and imp.target != own:
            found.append((imp.line, f"{', '.join(private)} from {imp.target}"))
    bound = _bound_modules(tree, modules)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            module = _module_of(node.value, bound, modules)
            if module is not None and module != own:
                found.append((node.lineno, f"{module}.{node.attr}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            module = _module_of(node.args[0], bound, modules)
            if module is not None and module != own:
                found.append((node.lineno, f"{node.func.id}({module}, {node.args[1].value!r})"))
    return found


def against_the_arrows(name: str, found: list[Import]) -> list[tuple[int, str]]:
    wrong = []
    for imp in found:
        if imp.target == "<relative>":
            wrong.append((imp.line, "relative import (use `from nbfan.x import y`)"))
        elif unit(imp.target) is None:
            wrong.append((imp.line, f"imports {imp.target}, which has no layer"))
        elif unit(imp.target) != unit(name) and layer(imp.target) >= layer(name):
            wrong.append((imp.line, f"{name} (layer {layer(name)}) imports {imp.target} (layer {layer(imp.target)})"))
    return wrong


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    modules = set(sources)
    return {
        name: {imp.target for imp in imports(ast.parse(text), modules) if imp.target in modules} - {name}
        for name, text in sources.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """One line per import cycle found by a depth-first walk (every cycle's modules appear)."""
    found = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                found.append(" -> ".join([*stack[stack.index(dep):], dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _sources() -> dict[str, str]:
    return {name: path.read_text() for name, path in all_modules().items()}


def _where(name: str, line: int) -> str:
    return f"{all_modules()[name].relative_to(PACKAGE.parent)}:{line}"


# -- the package --------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    missing = sorted(name for name in all_modules() if unit(name) is None)
    assert not missing, "modules outside DESIGN.md's layers (move them, or remove old import paths):\n" + "\n".join(
        missing
    )


def test_imports_are_absolute_and_point_down() -> None:
    modules = set(all_modules())
    wrong = []
    for name, text in sorted(_sources().items()):
        if unit(name) is None:
            continue  # reported by test_every_module_has_a_layer
        wrong += [f"{_where(name, line)}: {why}" for line, why in against_the_arrows(name, imports(ast.parse(text), modules))]
    assert not wrong, "imports against the arrows:\n" + "\n".join(wrong)


def test_no_module_uses_another_modules_private_names() -> None:
    modules = set(all_modules())
    wrong = []
    for name, text in sorted(_sources().items()):
        wrong += [f"{_where(name, line)}: {what}" for line, what in private_uses(ast.parse(text), name, modules)]
    assert not wrong, "private names of other modules:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    found = cycles(import_graph(_sources()))
    assert not found, "import cycles:\n" + "\n".join(found)


# -- the checks see what they must (each of these is a mistake the tests above must catch) --

FAKE_MODULES = {"nbfan", "nbfan.api", "nbfan.api.app", "nbfan.engine", "nbfan.engine.progress", "nbfan.cluster",
                "nbfan.cluster.connect", "nbfan.cluster.probe", "nbfan.keys"}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("def f():\n    import nbfan\n", "nbfan"),
        ("def f():\n    from nbfan import __version__\n", "nbfan"),
        ("from nbfan.engine import progress\n", "nbfan.engine.progress"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nbfan.api.app import App\n", "nbfan.api.app"),
        ("import importlib\ndef f():\n    return importlib.import_module('nbfan')\n", "nbfan"),
        ("m = __import__('nbfan.api.app')\n", "nbfan.api.app"),
    ],
)
def test_every_kind_of_import_is_seen(source: str, target: str) -> None:
    assert target in {imp.target for imp in imports(ast.parse(source), FAKE_MODULES)}


def test_a_lazy_import_of_nbfan_from_a_low_layer_is_against_the_arrows() -> None:
    found = imports(ast.parse("def f():\n    import importlib\n    importlib.import_module('nbfan')\n"), FAKE_MODULES)
    assert against_the_arrows("nbfan.cluster.probe", found)
    found = imports(ast.parse("from nbfan.api.app import App\n"), FAKE_MODULES)  # re-exporting an upper layer
    assert against_the_arrows("nbfan.engine.progress", found)
    assert not against_the_arrows("nbfan.engine.progress", imports(ast.parse("from nbfan.keys import x\n"),
                                                                   FAKE_MODULES))


def test_a_module_outside_the_table_has_no_layer() -> None:
    assert unit("nbfan.telemetry.query") is None and unit("nbfan.placement") is None
    assert unit("nbfan.api.app") == "nbfan.api" and unit("nbfan.dict") == "nbfan.dict" and unit("nbfan") == "nbfan"


@pytest.mark.parametrize(
    "source",
    [
        "from nbfan.engine import progress\nx = progress._factory\n",
        "import nbfan.engine.progress\nx = nbfan.engine.progress._factory\n",
        "import nbfan.engine.progress as p\np._factory = None\n",
        "from nbfan.engine import progress\ndef f():\n    return getattr(progress, '_factory', None)\n",
        "import importlib\nc = importlib.import_module('nbfan.cluster.connect')\nx = getattr(c, '_current')\n",
        "from nbfan.cluster.connect import _current\n",
    ],
)
def test_a_private_name_of_another_module_is_seen(source: str) -> None:
    assert private_uses(ast.parse(source), "nbfan.api.app", FAKE_MODULES)


def test_own_and_public_names_are_not_private_uses() -> None:
    source = "from nbfan.engine import progress\nx = progress.set_progress_factory\ny = progress.__name__\n"
    assert not private_uses(ast.parse(source), "nbfan.api.app", FAKE_MODULES)
    assert not private_uses(ast.parse("import nbfan.engine.progress\nx = nbfan.engine.progress._factory\n"),
                            "nbfan.engine.progress", FAKE_MODULES)


def test_a_cycle_through_function_level_and_type_only_imports_is_seen() -> None:
    sources = {
        "nbfan.api.app": "from nbfan.api import function\n",
        "nbfan.api.function": "def from_name():\n    from nbfan.api.deploy import lookup\n",
        "nbfan.api.deploy": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nbfan.api.app import App\n",
        "nbfan.api": "",
    }
    assert cycles(import_graph(sources)) == ["nbfan.api.app -> nbfan.api.function -> nbfan.api.deploy -> nbfan.api.app"]
    sources["nbfan.api.deploy"] = ""
    assert cycles(import_graph(sources)) == []
