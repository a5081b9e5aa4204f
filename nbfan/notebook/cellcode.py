"""What a `%%remote` cell reads, assigns and imports, found with `ast` before anything runs.

The client ships the names a cell reads (that exist in the notebook) and brings back the
names it assigns; names the cell imports itself are neither shipped nor needed from here.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field

#: Names IPython keeps in every namespace; a cell reading them never means notebook data.
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "_ih", "_oh", "_dh", "_ii", "_iii", "_i"})


@dataclass
class CellCode:
    """The cell's code and the names it reads, assigns and imports (sorted, unique)."""

    source: str
    reads: list[str] = field(default_factory=list)
    assigns: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    has_value: bool = False  # the last statement is an expression whose value is displayed


def _global_reads(table: symtable.SymbolTable, top: bool) -> set[str]:
    """Names read from the module namespace, at top level or from any nested scope."""
    reads: set[str] = set()
    for sym in table.get_symbols():
        if not sym.is_referenced():
            continue
        if top or sym.is_global() or (table.get_type() == "class" and not sym.is_local()):
            reads.add(sym.get_name())
    for child in table.get_children():
        reads |= _global_reads(child, False)
    return reads


class _Names(ast.NodeVisitor):
    """Module-level bindings: what the cell assigns and imports."""

    def __init__(self) -> None:
        self.assigns: set[str] = set()  # module level only: what lands in the cell's namespace
        self.imports: set[str] = set()
        self.depth = 0  # inside a function or class body or lambda
        self.comprehensions = 0  # inside a comprehension (at any depth)
        self.comprehension_targets: set[str] = set()  # loop variables of module-level comprehensions
        self.loads_outside_comprehensions: set[str] = set()  # names read at module level, not in one

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store) and self.depth == 0:
            self.assigns.add(node.id)
        if isinstance(node.ctx, ast.Store) and self.comprehensions and self.depth == self.comprehensions:
            self.comprehension_targets.add(node.id)
        if isinstance(node.ctx, ast.Load) and self.depth == 0:
            self.loads_outside_comprehensions.add(node.id)

    def _comprehension(self, node: ast.AST) -> None:
        self.depth += 1  # its loop variables do not leak into the namespace
        self.comprehensions += 1
        self.generic_visit(node)
        self.comprehensions -= 1
        self.depth -= 1

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _scope(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda, name: str | None
    ) -> None:
        if name is not None and self.depth == 0:
            self.assigns.add(name)
        for deco in getattr(node, "decorator_list", []):
            self.visit(deco)
        args = getattr(node, "args", None)
        if isinstance(args, ast.arguments):
            for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
                self.visit(default)
        for base in [*getattr(node, "bases", []), *getattr(node, "keywords", [])]:
            self.visit(base)
        self.depth += 1
        body = node.body if isinstance(node.body, list) else [node.body]  # lambda: one expression
        for stmt in body:
            self.visit(stmt)
        self.depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scope(node, node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node, None)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            name = alias.asname or alias.name.split(".")[0]
            self.imports.add(name)
            if self.depth == 0 and isinstance(node, ast.ImportFrom):
                self.assigns.add(name)  # `import x` binds a module: modules never come back

    visit_Import = _import
    visit_ImportFrom = _import

    def visit_Global(self, node: ast.Global) -> None:
        self.assigns.update(node.names)  # a function assigning a global changes the namespace

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name and self.depth == 0:
            self.assigns.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name and self.depth == 0:
            self.assigns.add(node.name)
        self.generic_visit(node)


def analyze(source: str, filename: str = "<%%remote cell>") -> CellCode:
    """Parse the cell (raising its SyntaxError here, before anything is shipped)."""
    tree = ast.parse(source, filename=filename)
    names = _Names()
    for stmt in tree.body:
        names.visit(stmt)
    table = symtable.symtable(source, filename, "exec")
    # Python >= 3.12 inlines comprehensions (PEP 709): their loop variables then show up as
    # module-level symbols, but they are not notebook data
    inlined = names.comprehension_targets - names.loads_outside_comprehensions - names.assigns
    reads = {
        n
        for n in _global_reads(table, True) - inlined
        if n not in names.imports and n not in IPYTHON_NAMES and not n.startswith("__")
    }
    has_value = bool(tree.body) and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";")
    return CellCode(
        source=source,
        reads=sorted(reads),
        assigns=sorted(n for n in names.assigns if not n.startswith("__")),
        imports=sorted(names.imports),
        has_value=has_value,
    )
