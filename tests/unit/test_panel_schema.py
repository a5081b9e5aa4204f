"""The JupyterLab panel's mirror of the snapshot schema (labextension/src/types.ts) says what
nbfan/scheduler/schema.py says: the same fields per TypedDict (with the same optional/nullable
marks and kinds of value), the same string literal unions and the same SCHEMA_VERSION. A field
added, renamed or retyped on one side only fails here, without node: types.ts is read by a small
regex-based reader that knows just the TypeScript this file uses."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from typing_extensions import NotRequired, Required, get_type_hints, is_typeddict

from nbfan.scheduler import schema

TYPES_TS = Path(__file__).resolve().parents[2] / "labextension" / "src" / "types.ts"

# TypeScript interface -> Python TypedDict (the interfaces carry JupyterLab's I prefix).
MIRRORS = {
    "ICaller": "Caller",
    "ICallSnapshot": "CallSnapshot",
    "ICallsSnapshot": "CallsSnapshot",
    "IGpu": "GpuSnapshot",
    "IClusterSnapshot": "ClusterSnapshot",
}
# Interfaces of types.ts that are not snapshots (replies of other routes).
# (The call detail's shapes are checked against the server's replies by tests/integration/test_server.py.)
TS_ONLY = {"ICancelReply", "IFailure", "IOutputLine", "ICallDetail", "IWatchMessage"}
LITERAL_UNIONS = ["CallKind", "CallState", "CallerKind"]

# A field as both sides are compared: (optional, nullable, kind); kind is "string", "number",
# "boolean", ("array", kind), ("map", kind), ("ref", TypedDict name) or ("literal", members).
Field = tuple[bool, bool, Any]


# --- the TypeScript side -----------------------------------------------------------------------


class TsSchema:
    """What types.ts declares: its version, its literal unions and its interfaces' fields."""

    def __init__(self, text: str) -> None:
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
        text = re.sub(r"//[^\n]*", "", text)
        version = re.search(r"export\s+const\s+SCHEMA_VERSION\s*=\s*(\d+)\s*;", text)
        self.version = int(version.group(1)) if version else None
        self.unions: dict[str, frozenset[str]] = {}
        for name, body in re.findall(r"export\s+type\s+(\w+)\s*=\s*([^;]*);", text):
            members = [m.strip() for m in split_top(body, "|") if m.strip()]
            if members and all(re.fullmatch(r"'[^']*'", m) for m in members):
                self.unions[name] = frozenset(m[1:-1] for m in members)
        self.interfaces: dict[str, dict[str, Field]] = {}
        for match in re.finditer(r"export\s+interface\s+(\w+)\s*\{", text):
            body = text[match.end() : closing_brace(text, match.end() - 1)]
            self.interfaces[match.group(1)] = self._fields(body)

    def _fields(self, body: str) -> dict[str, Field]:
        fields = {}
        for member in split_top(body, ";"):
            member = member.strip()
            if not member:
                continue
            parsed = re.fullmatch(r"(?:readonly\s+)?(\w+)\s*(\??)\s*:\s*(.+)", member, flags=re.DOTALL)
            assert parsed, f"types.ts: cannot read the interface member {member!r}"
            name, optional, annotation = parsed.groups()
            parts = [p.strip() for p in split_top(annotation, "|") if p.strip()]
            nullable = "null" in parts or "undefined" in parts
            rest = [p for p in parts if p not in ("null", "undefined")]
            if rest and all(re.fullmatch(r"'[^']*'", p) for p in rest):
                kind: Any = ("literal", frozenset(p[1:-1] for p in rest))
            else:
                assert len(rest) == 1, f"types.ts: {name}: a union the reader does not know: {annotation!r}"
                kind = self._kind(rest[0])
            fields[name] = (bool(optional), nullable, kind)
        return fields

    def _kind(self, annotation: str) -> Any:
        annotation = annotation.strip()
        if annotation in ("string", "number", "boolean"):
            return annotation
        if annotation.endswith("[]"):
            return ("array", self._kind(annotation[:-2]))
        array = re.fullmatch(r"(?:Readonly)?Array<(.+)>", annotation, flags=re.DOTALL)
        if array:
            return ("array", self._kind(array.group(1)))
        index = re.fullmatch(r"\{\s*\[\s*\w+\s*:\s*string\s*\]\s*:\s*(.+?)\s*;?\s*\}", annotation, flags=re.DOTALL)
        record = re.fullmatch(r"Record<\s*string\s*,\s*(.+)>", annotation, flags=re.DOTALL)
        value = index or record
        if value:
            return ("map", self._kind(value.group(1)))
        if annotation in self.unions:
            return ("literal", self.unions[annotation])
        if annotation in MIRRORS:
            return ("ref", MIRRORS[annotation])
        if annotation in TS_ONLY:
            return ("ts-only", annotation)
        if re.fullmatch(r"'[^']*'", annotation):
            return ("literal", frozenset([annotation[1:-1]]))
        raise AssertionError(f"types.ts: a type the reader does not know: {annotation!r}")


def split_top(text: str, separators: str) -> list[str]:
    """Split at any of `separators` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char in "{[(<":
            depth += 1
        elif char in "}])>":
            depth -= 1
        elif depth == 0 and char in separators:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def closing_brace(text: str, opening: int) -> int:
    depth = 0
    for i in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise AssertionError("types.ts: an interface is not closed")


# --- the Python side ---------------------------------------------------------------------------


def py_kind(hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return ("literal", frozenset(args))
    if hint is str:
        return "string"
    if hint in (int, float):
        return "number"
    if hint is bool:
        return "boolean"
    if origin is list:
        return ("array", py_kind(args[0]))
    if origin is dict:
        assert args[0] is str, f"schema.py: a dict whose keys are not str: {hint!r}"
        return ("map", py_kind(args[1]))
    if is_typeddict(hint):
        return ("ref", hint.__name__)
    raise AssertionError(f"schema.py: a type the test does not know: {hint!r}")


def py_fields(typed_dict: Any) -> dict[str, Field]:
    fields = {}
    for name, hint in get_type_hints(typed_dict, include_extras=True).items():
        # NotRequired/Required read from the hints: with `from __future__ import annotations`,
        # Python 3.10/3.11 leave them out of __optional_keys__.
        optional = not typed_dict.__total__
        if get_origin(hint) in (NotRequired, Required):
            optional = get_origin(hint) is NotRequired
            hint = get_args(hint)[0]
        parts = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
        rest = [p for p in parts if p is not type(None)]
        assert len(rest) == 1, f"schema.py: {typed_dict.__name__}.{name}: a union the test does not know"
        fields[name] = (optional, len(rest) < len(parts), py_kind(rest[0]))
    return fields


def differences(ts: dict[str, Field], py: dict[str, Field]) -> list[str]:
    """What differs between the two sides' fields of one type, in words."""
    found = [f"{name}: only in types.ts" for name in ts.keys() - py.keys()]
    found += [f"{name}: only in schema.py" for name in py.keys() - ts.keys()]
    for name in sorted(ts.keys() & py.keys()):
        for what, t, p in zip(("optional", "nullable", "kind"), ts[name], py[name]):
            if t != p:
                found.append(f"{name}: {what} is {t!r} in types.ts but {p!r} in schema.py")
    return sorted(found)


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ts() -> TsSchema:
    return TsSchema(TYPES_TS.read_text(encoding="utf-8"))


def test_schema_versions_match(ts: TsSchema) -> None:
    assert ts.version == schema.SCHEMA_VERSION


@pytest.mark.parametrize("name", LITERAL_UNIONS)
def test_literal_unions_match(ts: TsSchema, name: str) -> None:
    assert name in ts.unions, f"types.ts has no `export type {name} = '...' | ...;`"
    assert ts.unions[name] == frozenset(get_args(getattr(schema, name)))


def test_every_snapshot_type_is_mirrored(ts: TsSchema) -> None:
    typed_dicts = {name for name in schema.__all__ if is_typeddict(getattr(schema, name))}
    assert typed_dicts == set(MIRRORS.values()), "a TypedDict of schema.py without its TypeScript mirror"
    assert set(ts.interfaces) == set(MIRRORS) | TS_ONLY, "an interface of types.ts that mirrors nothing"


@pytest.mark.parametrize(("ts_name", "py_name"), MIRRORS.items())
def test_fields_match(ts: TsSchema, ts_name: str, py_name: str) -> None:
    assert ts.interfaces[ts_name], f"types.ts: no field read in {ts_name}"
    assert differences(ts.interfaces[ts_name], py_fields(getattr(schema, py_name))) == []


def test_a_field_on_one_side_only_is_caught() -> None:
    """The reader really sees the fields: types.ts with one more field, in memory, differs."""
    text = TYPES_TS.read_text(encoding="utf-8")
    edited = re.sub(r"(export\s+interface\s+ICaller\s*\{)", r"\1\n  extra?: string | null;", text)
    assert edited != text
    fields = TsSchema(edited).interfaces["ICaller"]
    assert differences(fields, py_fields(schema.Caller)) == ["extra: only in types.ts"]
