"""Fault injection: a Cohere server answering hostile ``embeddings`` (wrong count, empty, ragged,
non-finite or non-numeric vectors), through the unmodified cohere SDK. Cohere's vectors carry no
index: their count and width are what can be checked, and every such answer is refused naming
the model and the item, with nothing of it cached."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from embedify_cohere.testing import API_KEY, FakeCohere

import embedify
from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.testing import LoopbackServer, Request, Response

pytestmark = pytest.mark.faults

MODEL = "embed-english-v3.0"
TEXTS = ["first text", "second text", "third text"]
Mutation = Callable[[list[list[Any]]], Any]


def hostile(fake: FakeCohere, mutate: Mutation) -> Callable[[Request], Response]:
    """The fake's handler, with each answer's vectors (of any type) replaced by ``mutate``'s."""

    def handler(request: Request) -> Response:
        response = fake(request)
        if response.status != 200:
            return response
        body = response.body if isinstance(response.body, dict) else json.loads(response.body)
        for kind, vectors in body["embeddings"].items():
            body["embeddings"][kind] = mutate(vectors)
        return Response(200, body)

    return handler


def at(row: int, column: int, value: Any) -> Mutation:
    def mutate(vectors: list[list[Any]]) -> list[list[Any]]:
        vectors[row][column] = value
        return vectors

    return mutate


CASES: dict[str, tuple[Mutation, list[str]]] = {
    "one missing": (lambda vectors: vectors[:-1], ["2 vectors for 3 inputs"]),
    "one too many": (lambda vectors: [*vectors, vectors[0]], ["4 vectors for 3 inputs"]),
    "empty vectors": (lambda vectors: [[] for _ in vectors], ["no values"]),
    "ragged": (lambda vectors: [vectors[0], vectors[1][:-1], vectors[2]], ["input 1", "values"]),
    "NaN": (at(2, 0, math.nan), ["input 2", "NaN or infinite"]),
    "infinity": (at(0, 5, -math.inf), ["input 0", "NaN or infinite"]),
    "beyond float32": (at(1, 5, 1e39), ["input 1", "NaN or infinite"]),
    "a string in a vector": (at(1, 3, "0.5"), ["input 1", "str"]),
    "a bool in a vector": (at(0, 0, True), ["input 0", "bool"]),
    "a null in a vector": (at(2, 1, None), ["input 2", "NoneType"]),
}


@pytest.mark.parametrize("kind", ["float", "int8"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_answer_is_refused_and_not_cached(case: str, kind: str, tmp_path: Path) -> None:
    mutate, words = CASES[case]
    cache = tmp_path / "cache.sqlite3"
    with LoopbackServer(hostile(FakeCohere(), mutate)) as server:
        model = embedify.get_model(
            f"cohere:{MODEL}",
            base_url=server.url,
            api_key=API_KEY,
            embedding_type=kind,
            max_concurrency=1,
            cache=cache,
        )
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(TEXTS)
    assert {type(error) for error in caught.value.failures.values()} == {BadResponseError}
    message = str(caught.value.failures[0])
    for word in [f"cohere:{MODEL}", *words]:
        assert word in message, message
    assert API_KEY not in str(caught.value)
    assert EmbeddingCache.open(cache).stats()["entries"] == 0
