"""Checking what an embeddings server answered, before any of it reaches a caller or the cache.

Providers' parsers call these on the wire data, and the engine calls :func:`vector_matrix` on
every provider's result, so one set of rules holds everywhere: one vector per input, in input
order, all of one width that is not zero, every value a finite number. A breach is a
:class:`~embedify.errors.BadResponseError` naming the source (the model) and the item; messages
give types and positions, never the server's values, which may echo a secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embedify.errors import BadResponseError, untrusted
from embedify.report import Vectors

_NUMBER_TYPES = (int, float, np.integer, np.floating)
_NUMBER_KINDS = "iuf"  # numpy dtype kinds of numbers; bools ("b") are not numbers here


def ordered_embeddings(items: Any, count: int, *, source: str) -> list[Any]:
    """The ``embedding`` of each of ``items`` (OpenAI/Jina-style ``data``: ``[{"index": i,
    "embedding": ...}]``, any order) in input order, when the indices are exactly ``0..count-1``
    once each; a ``BadResponseError`` naming the offending item otherwise."""
    if not isinstance(items, list):
        raise _bad(source, f"its data is a {type(items).__name__}, not a list")
    if len(items) != count:
        raise _bad(source, f"the server returned {len(items)} embeddings for {count} inputs")
    ordered: list[Any] = [None] * count
    seen: dict[int, int] = {}  # index -> the position of the item that holds it
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _bad(source, f"data item {position} is a {type(item).__name__}, not an object")
        index = item.get("index")
        if type(index) is not int:  # not isinstance: True and False are ints in Python
            raise _bad(
                source,
                f"data item {position} has index {untrusted(repr(index), 40)} "
                f"({type(index).__name__}); the "
                f"inputs' indices are the integers 0..{count - 1}",
            )
        if not 0 <= index < count:
            raise _bad(
                source,
                f"data item {position} has index {index}, outside the inputs' indices "
                f"0..{count - 1}",
            )
        if index in seen:
            raise _bad(
                source,
                f"data items {seen[index]} and {position} both have index {index}; the inputs' "
                "indices must each appear once",
            )
        if "embedding" not in item:
            raise _bad(source, f"data item {position} (index {index}) has no embedding")
        seen[index] = position
        ordered[index] = item["embedding"]
    return ordered


def vector_matrix(rows: Any, count: int, *, source: str, width: int | None = None) -> Vectors:
    """``rows`` as a float32 ``(count, width)`` matrix, or a ``BadResponseError`` naming the
    input whose vector is wrong.

    ``rows`` is a 2-d numeric array, or a sequence with one vector per input: numbers, a 1-d
    numeric array, or a base64 string of little-endian float32 (``encoding_format=base64``).
    ``width`` is the dimension the model is known to return (``None``: not known yet).
    """
    if isinstance(rows, np.ndarray):
        matrix = _from_array(rows, count, source)
    elif isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
        if len(rows) != count:
            raise _bad(source, f"the server returned {len(rows)} vectors for {count} inputs")
        vectors = [_vector(row, position, source) for position, row in enumerate(rows)]
        matrix = np.empty((count, len(vectors[0]) if vectors else 0), dtype=np.float32)
        for position, vector in enumerate(vectors):
            if len(vector) != matrix.shape[1]:
                raise _bad(
                    source,
                    f"the vector for input {position} has {len(vector)} values, input 0's has "
                    f"{matrix.shape[1]}",
                )
            matrix[position] = vector
    else:
        raise _bad(source, f"it answered a {type(rows).__name__}, not a list of vectors")
    if count and matrix.shape[1] == 0:
        raise _bad(source, "its vectors hold no values")
    if width is not None and matrix.shape[1] != width:
        raise _bad(source, f"its vectors have {matrix.shape[1]} values; expected {width}")
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise _bad(
            source, f"the vector for input {int(np.argmin(finite))} holds NaN or infinite values"
        )
    return matrix


def _from_array(array: np.ndarray[Any, Any], count: int, source: str) -> Vectors:
    if array.dtype.kind not in _NUMBER_KINDS:
        raise _bad(source, f"it answered an array of {array.dtype.type.__name__}, not of numbers")
    if array.ndim != 2 or array.shape[0] != count:
        raise _bad(
            source, f"it answered shape {array.shape} for {count} inputs; expected ({count}, d)"
        )
    with np.errstate(over="ignore"):  # beyond float32 becomes infinite, refused below
        matrix: Vectors = array.astype(np.float32, copy=False)
    return matrix


def _vector(row: Any, position: int, source: str) -> Any:
    """One input's vector as a 1-d float32 array or a list of plain numbers."""
    if isinstance(row, str):
        try:
            raw = base64.b64decode(row, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(
                source, f"the vector for input {position} is a string but not base64"
            ) from None
        if len(raw) % 4:
            raise _bad(
                source,
                f"the vector for input {position} decodes to {len(raw)} bytes, not whole float32s",
            )
        return np.frombuffer(raw, dtype="<f4")
    if isinstance(row, np.ndarray):
        if row.ndim != 1 or row.dtype.kind not in _NUMBER_KINDS:
            raise _bad(
                source,
                f"the vector for input {position} is an array of {row.dtype.type.__name__} with "
                f"shape {row.shape}, not of numbers",
            )
        with np.errstate(over="ignore"):
            return row.astype(np.float32, copy=False)
    if not isinstance(row, (list, tuple)):
        raise _bad(source, f"the vector for input {position} is a {type(row).__name__}, not a list")
    for kind in set(map(type, row)):  # a few types per row: checked once each
        if not issubclass(kind, _NUMBER_TYPES) or issubclass(kind, (bool, np.bool_)):
            raise _bad(
                source,
                f"the vector for input {position} holds a {kind.__name__} where numbers belong",
            )
    try:
        with np.errstate(over="ignore"):
            return np.asarray(row, dtype=np.float32)
    except OverflowError:  # an integer beyond any float
        raise _bad(
            source, f"the vector for input {position} holds NaN or infinite values"
        ) from None


def _bad(source: str, problem: str) -> BadResponseError:
    return BadResponseError(f"{source} returned an invalid answer: {problem}.")
