"""Embedding columns of Arrow tables: the one step both the Ray and the in-process paths run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from embedify.errors import ConfigurationError

if TYPE_CHECKING:
    from embedify import EmbeddingModel
    from embedify.protocol import Role


def is_text(kind: pa.DataType) -> bool:
    """Whether a column of ``kind`` holds text: any Arrow string layout (``string``,
    ``large_string``, ``string_view``), or a dictionary of strings (pandas' categoricals)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    layouts = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return any(is_layout(kind) for is_layout in layouts)


def texts_of(table: pa.Table, column: str, *, first_row: int | None = None) -> list[str]:
    """The strings of ``column``; a missing column or a null names the fix. ``first_row`` is
    the table's first row in the whole input, or ``None`` where rows are not numbered (Ray
    Data's batches), so an error never passes a row's place in a batch off as its row."""
    if column not in table.column_names:
        raise ConfigurationError(
            f"no column {column!r} to embed; the data has: {', '.join(table.column_names)}. "
            "Pick one with --column (or column=...)."
        )
    values = table.column(column)
    if not is_text(values.type):
        raise ConfigurationError(
            f"column {column!r} holds {values.type}, not text; embed a string column."
        )
    if values.null_count:
        index = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        where = (
            f"row {first_row + index}"
            if first_row is not None
            else f"a row (row {index} of a batch of {len(table)}; Ray Data does not number rows)"
        )
        raise ConfigurationError(
            f"{where} has no {column!r} (null); drop or fill empty rows before embedding, e.g. "
            f"ds.filter(lambda row: row[{column!r}] is not None)."
        )
    texts: list[str] = values.to_pylist()
    return texts


def vectors_to_arrow(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """``(n, d)`` float32 as an Arrow ``fixed_size_list<float32>[d]`` column, without copying
    into Python lists."""
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, int(vectors.shape[1]))


def add_embeddings(
    table: pa.Table,
    model: EmbeddingModel,
    column: str,
    output_column: str,
    role: Role,
    *,
    first_row: int | None = None,
) -> pa.Table:
    """``table`` with ``output_column`` holding the embedding of each row's ``column``."""
    if output_column in table.column_names:
        raise ConfigurationError(
            f"the data already has a column {output_column!r}; pick another --output-column."
        )
    vectors = model.embed(texts_of(table, column, first_row=first_row), role)
    return table.append_column(output_column, vectors_to_arrow(vectors))
