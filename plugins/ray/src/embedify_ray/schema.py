"""One Arrow schema for every row of a JSONL input, decided before anything is written.

Inferring a schema part by part loses columns that a part's first rows lack and writes parts
that cannot be read back as one dataset. So the whole input is scanned first and each row's
JSON types are merged into one schema: a key missing from a row is null there, an integer
column that also holds floats becomes float64 (when every integer is exact as a float), and
any other mix of types is refused with the line and both types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from embedify.errors import ConfigurationError

#: Integers up to this magnitude are exact as float64, so an int column may widen to float.
FLOAT_EXACT_INT = 2**53
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Kind = Literal["null", "boolean", "integer", "number", "string", "array", "object"]


@dataclass(frozen=True)
class JsonType:
    """The type of JSON values seen so far at one place in the rows."""

    kind: Kind
    #: An integer beyond 2**53 was seen: widening to float64 would change it.
    wide: bool = False
    item: JsonType | None = None  # array
    fields: tuple[tuple[str, JsonType], ...] = ()  # object, in first-seen order

    def describe(self) -> str:
        if self.kind == "array" and self.item is not None and self.item.kind != "null":
            return f"array of {self.item.describe()}"
        if self.kind == "integer" and self.wide:
            return "integer beyond 2**53"
        return {"null": "null", "object": "object"}.get(self.kind, self.kind)


NULL = JsonType("null")


class SchemaConflictError(ConfigurationError):
    """Two rows disagree on a column's type (or a value fits no Parquet type); ``column`` is
    the top-level column, ``path`` the place inside it (``meta.tags[]``)."""

    def __init__(self, message: str, *, column: str, path: str, line: int) -> None:
        super().__init__(message)
        self.column, self.path, self.line = column, path, line


class _Conflict(Exception):
    """Raised inside the merge; :class:`RowSchema` adds the row's location."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path, self.problem = path, problem


def _mixed(earlier: JsonType, here: JsonType, path: str) -> _Conflict:
    return _Conflict(
        path,
        f"holds {here.describe()} on this line but {earlier.describe()} on earlier lines; one "
        "column needs one type. Make its values agree (e.g. write numbers as strings).",
    )


def type_of(value: Any, path: str) -> JsonType:
    """The JSON type of one decoded value (``path`` names it in errors)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return JsonType("boolean")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _Conflict(path, f"holds {value}, beyond 64-bit integers; write it as a string.")
        return JsonType("integer", wide=abs(value) > FLOAT_EXACT_INT)
    if isinstance(value, float):
        return JsonType("number")
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Conflict(
                    path,
                    "holds a lone surrogate (an escape like \\ud800), which is not valid "
                    "Unicode; fix the text that wrote it.",
                ) from None
        return JsonType("string")
    if isinstance(value, list):
        item = NULL
        for element in value:
            item = merge(item, type_of(element, f"{path}[]"), f"{path}[]")
        return JsonType("array", item=item)
    if isinstance(value, dict):
        return JsonType(
            "object",
            fields=tuple((key, type_of(child, f"{path}.{key}")) for key, child in value.items()),
        )
    raise _Conflict(path, f"holds a {type(value).__name__}, which is not a JSON value.")


def merge(earlier: JsonType, here: JsonType, path: str) -> JsonType:
    """The type that holds every value of both, or ``_Conflict`` when none does losslessly."""
    if here.kind == "null" or earlier == here:
        return earlier
    if earlier.kind == "null":
        return here
    kinds = {earlier.kind, here.kind}
    if kinds == {"integer"}:
        return JsonType("integer", wide=True)  # one of them is wide, or they would be equal
    if kinds == {"integer", "number"} and not (earlier.wide or here.wide):
        return JsonType("number")
    if kinds == {"array"} and earlier.item is not None and here.item is not None:
        return JsonType("array", item=merge(earlier.item, here.item, f"{path}[]"))
    if kinds == {"object"}:
        fields = dict(earlier.fields)
        for key, child in here.fields:
            fields[key] = merge(fields.get(key, NULL), child, f"{path}.{key}")
        return JsonType("object", fields=tuple(fields.items()))
    raise _mixed(earlier, here, path)


def to_arrow(kind: JsonType, path: str) -> pa.DataType:
    """The Arrow type that stores ``kind``; an object with no field anywhere is refused, as
    Parquet cannot store it."""
    if kind.kind == "array":
        return pa.list_(to_arrow(kind.item or NULL, f"{path}[]"))
    if kind.kind == "object":
        if not kind.fields:
            raise ConfigurationError(
                f"column {path!r} only ever holds empty objects ({{}}), which Parquet cannot "
                "store; drop that key or give those objects a field."
            )
        return pa.struct([(key, to_arrow(child, f"{path}.{key}")) for key, child in kind.fields])
    return {
        "null": pa.null(),
        "boolean": pa.bool_(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "string": pa.string(),
    }[kind.kind]


class RowSchema:
    """Merges rows one at a time (a file's rows stream through it) into one schema."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.columns: dict[str, JsonType] = {}

    def add(self, line: int, row: Mapping[str, Any]) -> None:
        """Merge the row decoded from ``line`` (1-based line of the file)."""
        for column, value in row.items():
            try:
                self.columns[column] = merge(
                    self.columns.get(column, NULL), type_of(value, column), column
                )
            except _Conflict as conflict:
                raise SchemaConflictError(
                    f"{self.source}:{line}: column {conflict.path!r} {conflict.problem}",
                    column=column,
                    path=conflict.path,
                    line=line,
                ) from None

    def schema(self) -> pa.Schema:
        return pa.schema([(name, to_arrow(kind, name)) for name, kind in self.columns.items()])


def schema_of_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], source: str) -> pa.Schema:
    """The schema of ``(line, row)`` pairs: every column any row has, in first-seen order."""
    merged = RowSchema(source)
    for line, row in rows:
        merged.add(line, row)
    return merged.schema()
