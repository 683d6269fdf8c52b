"""Fault injection: a Text-Embeddings-Inference server answering hostile ``/embed`` bodies
(wrong count, empty, ragged, non-finite or non-numeric vectors), through httpx. TEI's vectors
carry no index: their count and width are what can be checked, and every such answer is refused
naming the model and the item, with nothing of it cached."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from embedify_tei.testing import FakeTEI

import embedify
from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.testing import LoopbackServer, Request, Response

pytestmark = pytest.mark.faults

TEXTS = ["first text", "second text", "third text"]
Mutation = Callable[[list[list[Any]]], Any]


def hostile(fake: FakeTEI, mutate: Mutation) -> Callable[[Request], Response]:
    """The fake's handler, with the vectors of each ``/embed`` answer replaced by ``mutate``'s."""

    def handler(request: Request) -> Response:
        response = fake(request)
        if response.status != 200 or request.path != "/embed":
            return response
        body = response.body if isinstance(response.body, list) else json.loads(response.body)
        return Response(200, mutate(body))

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


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_answer_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    mutate, words = CASES[case]
    cache = tmp_path / "cache.sqlite3"
    with LoopbackServer(hostile(FakeTEI(), mutate)) as server:
        model = embedify.get_model(f"tei:{server.url}", max_concurrency=1, cache=cache)
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(TEXTS)
        source = f"tei:{server.url}"
    assert {type(error) for error in caught.value.failures.values()} == {BadResponseError}
    message = str(caught.value.failures[0])
    for word in [source, *words]:
        assert word in message, message
    assert EmbeddingCache.open(cache).stats()["entries"] == 0
    assert model.dimension is None  # nothing learned from it either


INFO_CASES = {
    "a string": ("max_client_batch_size", "lots"),
    "a bool": ("max_client_batch_size", True),
    "a negative": ("max_client_batch_size", -3),
    "a float": ("max_client_batch_size", 1e300),
    "zero tokens per input": ("max_input_length", 0),
    "negative tokens per batch": ("max_batch_tokens", -1),
    "negative permits": ("max_concurrent_requests", -1),
}


@pytest.mark.parametrize("case", list(INFO_CASES))
def test_hostile_limits_in_info_are_refused_by_name(case: str) -> None:
    """The engine plans every request from /info: a limit that is not a positive whole number
    is refused naming the field, never planned with and never a bare ValueError."""
    field, value = INFO_CASES[case]
    fake = FakeTEI()

    def handler(request: Request) -> Response:
        response = fake(request)
        if request.path == "/info" and isinstance(response.body, dict):
            response.body[field] = value
        return response

    with LoopbackServer(handler) as server:
        model = embedify.get_model(f"tei:{server.url}", cache=False, max_retries=0)
        with pytest.raises(BadResponseError, match=f"/info gives {field}="):
            model.embed(TEXTS)
