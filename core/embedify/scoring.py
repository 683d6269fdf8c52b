"""Similarity between vectors (``embedify.similarity``, ``embedify.top_k``): cosine (the default),
dot product and euclidean distance. (Not named ``similarity``: a submodule of that name would
hide the function ``embedify.similarity`` once imported.)

Everything works in float32 and in chunks of the corpus, so scoring a million vectors does not
allocate a million-by-million anything, and ``top_k`` uses ``argpartition`` per chunk instead
of sorting every score.

Quantized vectors (see :mod:`embedify.quantize`) say their ``precision``: int8 codes are scored
as numbers (in float32, so products never overflow int8), uint8 codes as the same numbers
shifted by 128 (so both score alike), and packed ``binary``/``ubinary`` bits by Hamming
distance, read as ±1 vectors.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from embedify.quantize import PACKED, Precision, as_packed_bytes, hamming_distances

Metric = Literal["cosine", "dot", "euclidean"]
Array = np.ndarray[Any, Any]
DEFAULT_CHUNK = 65_536


def _as_matrix(
    vectors: Array | list[Any], name: str, precision: Precision = "float32"
) -> tuple[Array, bool]:
    """Rows to score: float32, or packed bytes for binary precisions."""
    if precision in PACKED:
        array = as_packed_bytes(np.asarray(vectors), precision)
    elif precision == "uint8":
        array = np.asarray(vectors, dtype=np.float32) - 128.0
    else:
        array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        return array[None, :], True
    if array.ndim != 2:
        raise ValueError(f"{name} must be one vector (d,) or a matrix (n, d); got {array.shape}")
    return array, False


def _normalized(array: Array) -> Array:
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Array = array / norms
    return result


def _scores(queries: Array, corpus: Array, metric: Metric, packed: bool = False) -> Array:
    """Higher is more similar for every metric (euclidean is returned negated here)."""
    result: Array
    if metric not in ("cosine", "dot", "euclidean"):
        raise ValueError(f"unknown metric {metric!r}; use 'cosine', 'dot' or 'euclidean'")
    if packed:  # bits as ±1 vectors: h differing bits of n
        differing = hamming_distances(queries, corpus).astype(np.float32)
        bits = float(queries.shape[1] * 8)
        if metric == "cosine":
            result = 1.0 - 2.0 * differing / bits
        elif metric == "dot":
            result = bits - 2.0 * differing
        else:
            result = -2.0 * np.sqrt(differing)
        return result
    if metric == "cosine":
        result = _normalized(queries) @ _normalized(corpus).T
        return result
    if metric == "dot":
        result = queries @ corpus.T
        return result
    squared = (
        (queries**2).sum(axis=1)[:, None]
        - 2 * (queries @ corpus.T)
        + (corpus**2).sum(axis=1)[None, :]
    )
    result = -np.sqrt(np.maximum(squared, 0.0))
    return result


def similarity(
    a: Array | list[Any],
    b: Array | list[Any],
    metric: Metric = "cosine",
    *,
    precision: Precision = "float32",
) -> Array:
    """Pairwise scores between ``a`` and ``b``: a float for two vectors, else a matrix.

    Cosine and dot: higher is more similar. Euclidean: the distance (lower is more similar).
    ``precision`` says what the vectors hold when they are quantized (see the module docs).
    """
    left, left_single = _as_matrix(a, "a", precision)
    right, right_single = _as_matrix(b, "b", precision)
    if left.shape[1] != right.shape[1]:
        raise ValueError(f"dimensions differ: {left.shape[1]} vs {right.shape[1]}")
    scores = _scores(left, right, metric, precision in PACKED)
    if metric == "euclidean":
        scores = -scores
    if left_single and right_single:
        scores = scores[0, 0]
    elif left_single:
        scores = scores[0]
    elif right_single:
        scores = scores[:, 0]
    return scores


def cosine_similarity(
    a: Array | list[Any], b: Array | list[Any], *, precision: Precision = "float32"
) -> Array:
    """Cosine similarity; see :func:`similarity`."""
    return similarity(a, b, "cosine", precision=precision)


def top_k(
    query: Array | list[Any],
    corpus: Array,
    k: int = 10,
    metric: Metric = "cosine",
    *,
    chunk_size: int = DEFAULT_CHUNK,
    precision: Precision = "float32",
) -> tuple[Array, Array]:
    """The ``k`` corpus rows most similar to each query: ``(indices, scores)``, best first.

    One query vector gives 1-D results, a matrix of queries gives ``(q, k)``. Scores are as in
    :func:`similarity` (euclidean: distances, ascending), ``precision`` too.
    """
    packed = precision in PACKED
    queries, single = _as_matrix(query, "query", precision)
    corpus, _ = _as_matrix(corpus, "corpus", precision)
    if corpus.ndim != 2 or corpus.shape[1] != queries.shape[1]:
        raise ValueError(f"corpus must be (n, {queries.shape[1]}); got {corpus.shape}")
    k = min(k, len(corpus))
    if k <= 0:
        empty = np.zeros((len(queries), 0))
        return (empty[0].astype(np.int64), empty[0]) if single else (empty.astype(np.int64), empty)
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_indices = np.zeros((len(queries), 0), dtype=np.int64)
    if metric == "cosine" and not packed:
        queries = _normalized(queries)
    for start in range(0, len(corpus), chunk_size):
        chunk = corpus[start : start + chunk_size]
        if metric == "cosine" and not packed:
            scores = queries @ _normalized(chunk).T
        else:
            scores = _scores(queries, chunk, metric, packed)
        take = min(k, scores.shape[1])
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        candidate_scores = np.concatenate(
            [best_scores, np.take_along_axis(scores, part, axis=1)], axis=1
        )
        candidate_indices = np.concatenate([best_indices, part + start], axis=1)
        keep_count = min(k, candidate_scores.shape[1])
        keep = np.argpartition(-candidate_scores, keep_count - 1, axis=1)[:, :keep_count]
        best_scores = np.take_along_axis(candidate_scores, keep, axis=1)
        best_indices = np.take_along_axis(candidate_indices, keep, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    indices = np.take_along_axis(best_indices, order, axis=1)
    scores = np.take_along_axis(best_scores, order, axis=1)
    if metric == "euclidean":
        scores = -scores
    return (indices[0], scores[0]) if single else (indices, scores)
