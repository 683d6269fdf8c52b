"""Quantized vectors: one byte a dimension (``int8``/``uint8``) or one bit (``binary``/``ubinary``).

The conventions are sentence-transformers' (``quantize_embeddings``), so vectors interoperate
with it, with Cohere's and Voyage's native outputs and with vector stores that read them:

- ``binary``/``ubinary``: bit ``i`` is set where component ``i`` is positive, packed eight to a
  byte, most significant bit first (``numpy.packbits``); ``ubinary`` is that byte as uint8,
  ``binary`` the same byte minus 128 as int8. A d-dimensional vector takes d/8 bytes.
- ``int8``/``uint8``: each dimension's range, from a calibration set, is cut into 256 steps;
  ``uint8`` is the step (0..255), ``int8`` the step minus 128. Values outside the calibrated
  range are clipped to its ends (sentence-transformers lets them wrap around).

Per-dimension ranges come from the float vectors of calibration texts: the mean ± 4 standard
deviations of each dimension, widened to the smallest and largest value seen. The texts are
the user's (``calibration=``, a few hundred like the data are best) or the built-in set in
``calibration.txt``, embedded once per model with the document role.

Scoring packed bits (:func:`hamming_scores`) reads them as ±1 vectors: cosine is
``1 - 2·h/bits`` and dot ``bits - 2·h`` for ``h`` differing bits.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np

from embedify.errors import BadResponseError, ConfigurationError

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[Precision, ...] = ("float32", "int8", "uint8", "binary", "ubinary")
PACKED: tuple[Precision, ...] = ("binary", "ubinary")
CALIBRATED: tuple[Precision, ...] = ("int8", "uint8")
DTYPES: dict[Precision, Any] = {
    "float32": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "binary": np.int8,
    "ubinary": np.uint8,
}
#: The values a provider may send for each quantized precision (inclusive).
CODE_RANGES: dict[Precision, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "binary": (-128, 127),
    "ubinary": (0, 255),
}
# Calibrated ranges reach this many standard deviations from each dimension's mean, so a small
# calibration set does not clip the tails of real data.
SPREAD = 4.0
Array = np.ndarray[Any, Any]


def width(dimension: int, precision: Precision) -> int:
    """Values per vector: ``dimension``, or its bytes when packed (eight dimensions a byte)."""
    return -(-dimension // 8) if precision in PACKED else dimension


def builtin_calibration() -> list[str]:
    """The built-in calibration texts: short and long, questions and passages, many topics."""
    return list(_builtin_calibration())


@cache
def _builtin_calibration() -> tuple[str, ...]:
    text = resources.files("embedify").joinpath("calibration.txt").read_text("utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


def calibration_identity(texts: list[str] | None) -> str:
    """Names a calibration set in the model's fingerprint, before anything is embedded."""
    if texts is None:
        return "builtin-1"
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return f"sha256:{digest.hexdigest()[:16]}"


def calibrated_ranges(vectors: Array) -> Array:
    """Per-dimension ``(2, d)`` [low, high] from calibration vectors (see the module docs)."""
    values = np.asarray(vectors, dtype=np.float64)
    if values.ndim != 2 or len(values) < 2:
        raise ConfigurationError(
            f"calibration needs at least 2 vectors to measure ranges; got shape {values.shape}. "
            "Give calibration= a few hundred texts like your data."
        )
    mean, spread = values.mean(axis=0), values.std(axis=0) * SPREAD
    low = np.minimum(values.min(axis=0), mean - spread)
    high = np.maximum(values.max(axis=0), mean + spread)
    high = np.where(high > low, high, low + 1e-6)  # a constant dimension still has one step
    return np.stack([low, high]).astype(np.float32)


def quantize(vectors: Array, precision: Precision, ranges: Array | None = None) -> Array:
    """Float vectors ``(n, d)`` as ``precision`` codes; ``ranges`` (from
    :func:`calibrated_ranges`) are needed for int8 and uint8. NaN rows (failed inputs) become
    all-zero codes: the job's report says which rows failed."""
    floats = np.asarray(vectors, dtype=np.float32)
    if precision == "float32":
        return floats
    failed = ~np.isfinite(floats).all(axis=1)
    if precision in PACKED:
        packed = np.packbits(floats > 0, axis=1)
        packed[failed] = 0
        if precision == "ubinary":
            return packed
        return (packed.astype(np.int16) - 128).astype(np.int8)
    if ranges is None or ranges.shape != (2, floats.shape[1]):
        raise ConfigurationError(
            f"{precision} quantization needs calibrated ranges of shape (2, {floats.shape[1]})"
        )
    low, high = ranges[0], ranges[1]
    steps = np.rint((floats - low) / (high - low) * 255.0)
    steps = np.clip(np.nan_to_num(steps, nan=0.0), 0, 255)
    steps[failed] = 0 if precision == "uint8" else 128
    codes: Array = steps.astype(np.uint8) if precision == "uint8" else (steps - 128).astype(np.int8)
    return codes


def provider_codes(vectors: Array, precision: Precision, source: str) -> Array:
    """A provider's quantized answer as its dtype, or ``BadResponseError``: every value must be
    a whole number inside the precision's range (a hostile 300 must not wrap around to 44)."""
    low, high = CODE_RANGES[precision]
    values = np.asarray(vectors, dtype=np.float64)
    outside = (values < low) | (values > high) | (values != np.rint(values))
    if outside.any():
        row, column = (int(i) for i in np.argwhere(outside)[0])
        raise BadResponseError(
            f"{source} returned {float(values[row, column]):g} at input {row}, component {column}, "
            f"for {precision} output; {precision} values are whole numbers from {low} to {high}."
        )
    result: Array = values.astype(DTYPES[precision])
    return result


def unpacked_bits(codes: Array, precision: Precision) -> Array:
    """Packed ``binary``/``ubinary`` codes as their bits (uint8 0/1, ``(n, bytes·8)``)."""
    as_bytes = np.asarray(codes)
    if precision == "binary":
        as_bytes = (as_bytes.astype(np.int16) + 128).astype(np.uint8)
    return np.unpackbits(as_bytes.astype(np.uint8, copy=False), axis=-1)


def as_packed_bytes(codes: Array, precision: Precision) -> Array:
    """``binary`` (int8, offset by 128) or ``ubinary`` codes as plain uint8 bytes."""
    array = np.asarray(codes)
    if precision == "binary":
        if array.dtype != np.int8 and (array.min(initial=0) < -128 or array.max(initial=0) > 127):
            raise ValueError("binary codes are int8 (-128..127); these are not: use 'ubinary'")
        return (array.astype(np.int16) + 128).astype(np.uint8)
    if array.min(initial=0) < 0 or array.max(initial=0) > 255:
        raise ValueError("ubinary codes are uint8 (0..255); these are not: use 'binary'")
    return array.astype(np.uint8)


def hamming_distances(queries: Array, corpus: Array) -> Array:
    """Differing bits between each query row and each corpus row, both packed uint8 bytes
    ``(q, b)`` and ``(n, b)``; an int32 ``(q, n)`` matrix, computed a block at a time."""
    q, n = len(queries), len(corpus)
    result = np.empty((q, n), dtype=np.int32)
    if queries.shape[1] % 8 == 0:  # eight bytes at a time
        queries, corpus = queries.view(np.uint64), corpus.view(np.uint64)
    rows = max(1, (1 << 22) // max(1, n * corpus.shape[1]))  # ~4M words per block
    for start in range(0, q, rows):
        block = np.bitwise_xor(queries[start : start + rows, None, :], corpus[None, :, :])
        result[start : start + rows] = np.bitwise_count(block).sum(axis=2, dtype=np.int32)
    return result
