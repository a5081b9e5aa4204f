"""The import graph of the package follows DESIGN.md's arrows: notebook/server/cli -> api ->
objects -> engine -> worker/scheduler/cluster -> keys/config/exception -> Dask. Checked by
parsing every module (imports inside functions count too): nothing imports upward or sideways
across the lower packages, no module imports another module's private names, and there is no
import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "nbfan"

LAYERS: dict[str, int] = {
    "nbfan.keys": 0, "nbfan.config": 0, "nbfan.exception": 0, "nbfan.compat": 0,
    "nbfan.worker": 1, "nbfan.scheduler": 1, "nbfan.cluster": 1,
    "nbfan.engine": 2,
    "nbfan.objects": 3,
    "nbfan.api": 4,
    "nbfan.notebook": 5, "nbfan.server": 5, "nbfan.cli": 5,
}
TOP = 6  # nbfan/__init__.py and the import-path modules (nbfan.dict, nbfan.telemetry.query...)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer unit a module belongs to: its package under nbfan, or itself for leaves."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else module


def layer(module: str) -> int:
    return LAYERS.get(unit(module), TOP)


def _type_only_nodes(tree: ast.AST) -> set[ast.AST]:
    """Import nodes under `if TYPE_CHECKING:` (they never run)."""
    nodes: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                nodes.update(ast.walk(child))
    return nodes


def imports(path: Path, *, runtime_only: bool = False) -> list[tuple[str, list[str], int]]:
    """(imported nbfan module, names, line) for every import in the file, at any depth
    (`runtime_only`: leave out the ones under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    skip = _type_only_nodes(tree) if runtime_only else set()
    found = []
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nbfan" and not node.level:
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "nbfan"]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append(("<relative>", [a.name for a in node.names], node.lineno))
    return found


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts}


def resolved_imports(path: Path, modules: dict[str, Path], **options: bool) -> list[tuple[str, list[str], int]]:
    """`imports`, with `from package import module` read as an import of that module."""
    found = []
    for target, names, line in imports(path, **options):
        submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
        if submodules and len(submodules) == len(names):
            found += [(module, [], line) for module in submodules]
        else:
            found.append((target, names, line))
    return found


def test_imports_are_absolute_and_point_down() -> None:
    modules = all_modules()
    wrong = []
    for name, path in sorted(modules.items()):
        for target, _names, line in resolved_imports(path, modules):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if target == "<relative>":
                wrong.append(f"{where}: relative import (use `from nbfan.x import y`)")
                continue
            if target == "nbfan":  # the public API: only the outermost layer (the CLI, kernel, demo) uses it
                if layer(name) < LAYERS["nbfan.cli"]:
                    wrong.append(f"{where}: imports the top-level package")
                continue
            if unit(target) == unit(name):
                continue
            if layer(target) >= layer(name):
                wrong.append(f"{where}: {name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    assert not wrong, "imports against the arrows:\n" + "\n".join(wrong)


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = []
    for name, path in sorted(all_modules().items()):
        for target, names, line in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != name:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {', '.join(private)} from {target}")
    assert not wrong, "private names imported from other modules:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for target, names, _line in imports(path, runtime_only=True):  # type-only imports never run
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != name:
                    deps.add(candidate)
                    break
        graph[name] = deps
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
