from __future__ import annotations

import numpy as np
import pytest

from embedify.scoring import cosine_similarity, similarity, top_k

rng = np.random.default_rng(0)


def test_cosine_matches_the_definition() -> None:
    a, b = rng.standard_normal(16), rng.standard_normal(16)
    expected = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert np.isclose(cosine_similarity(a, b), expected, atol=1e-6)
    matrix = rng.standard_normal((5, 16))
    assert similarity(a, matrix).shape == (5,)
    assert similarity(matrix, matrix).shape == (5, 5)
    assert np.allclose(np.diag(similarity(matrix, matrix)), 1.0, atol=1e-6)


def test_dot_and_euclidean() -> None:
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    assert np.isclose(similarity(a, b, "dot"), 11.0)
    assert np.isclose(similarity(a, b, "euclidean"), np.sqrt(8.0), atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("chunk_size", [7, 100, 65_536])
def test_top_k_equals_a_full_sort(metric: str, chunk_size: int) -> None:
    corpus = rng.standard_normal((250, 8)).astype(np.float32)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    indices, scores = top_k(queries, corpus, 10, metric, chunk_size=chunk_size)  # type: ignore[arg-type]
    full = similarity(queries, corpus, metric)  # type: ignore[arg-type]
    for row in range(3):
        order = np.argsort(full[row]) if metric == "euclidean" else np.argsort(-full[row])
        assert indices[row].tolist() == order[:10].tolist()
        assert np.allclose(scores[row], full[row][order[:10]], atol=1e-4)


def test_top_k_single_query_and_small_corpus() -> None:
    corpus = np.eye(3, dtype=np.float32)
    indices, scores = top_k(np.array([0.0, 1.0, 0.1]), corpus, k=10)
    assert indices.tolist()[0] == 1 and len(indices) == 3 and scores[0] > scores[1]


def test_mismatched_dimensions_are_an_error() -> None:
    with pytest.raises(ValueError, match="dimensions differ"):
        similarity(np.ones(3), np.ones(4))


def test_the_public_functions_stay_functions_after_the_modules_load() -> None:
    """A submodule named like a public function would replace it on the package once imported
    (``embedify.similarity`` the module, not the function)."""
    import embedify
    import embedify.collection

    assert callable(embedify.similarity) and callable(embedify.top_k)
    assert float(embedify.similarity([1.0, 0.0], [1.0, 0.0])) == 1.0
