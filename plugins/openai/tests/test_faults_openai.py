"""Fault injection: an OpenAI-compatible server answering hostile ``data`` (bad indices, empty,
ragged or non-finite vectors, broken base64), through the unmodified openai SDK. Every such
answer is refused naming the model and the item, and nothing of it is cached; a valid answer
in any order gives the rows in input order."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI, vector_for

import embedify
from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.testing import LoopbackServer, Request, Response

pytestmark = pytest.mark.faults

MODEL = "text-embedding-3-small"
TEXTS = ["first text", "second text", "third text"]
Mutation = Callable[[list[dict[str, Any]]], None]


def hostile(fake: FakeOpenAI, mutate: Mutation) -> Callable[[Request], Response]:
    """The fake's handler, with ``mutate`` applied to the ``data`` of each embeddings answer."""

    def handler(request: Request) -> Response:
        response = fake(request)
        if response.status != 200 or not request.path.endswith("/embeddings"):
            return response
        body = json.loads(response.body)
        mutate(body["data"])
        return Response(200, body)

    return handler


def like(item: dict[str, Any], values: list[Any]) -> Any:
    """``values`` in the item's encoding (base64 float32 or a JSON list)."""
    if isinstance(item["embedding"], str):
        return base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode()
    return values


def width(item: dict[str, Any]) -> int:
    value = item["embedding"]
    return len(base64.b64decode(value)) // 4 if isinstance(value, str) else len(value)


def index_of(position: int, value: Any) -> Mutation:
    return lambda data: data[position].__setitem__("index", value)


def item_for(data: list[dict[str, Any]], index: int) -> dict[str, Any]:
    return next(item for item in data if item["index"] == index)


def vector_of(index: int, make: Callable[[int], list[Any]]) -> Mutation:
    def mutate(data: list[dict[str, Any]]) -> None:
        item = item_for(data, index)
        item["embedding"] = like(item, make(width(item)))

    return mutate


CASES: dict[str, tuple[Mutation, list[str]]] = {
    "bool index": (index_of(1, True), ["data item 1", "index True (bool)"]),
    "float index": (index_of(1, 1.0), ["data item 1", "index 1.0 (float)"]),
    "string index": (index_of(1, "1"), ["data item 1", "index '1' (str)"]),
    "null index": (index_of(1, None), ["data item 1", "NoneType"]),
    "negative index": (index_of(0, -1), ["data item 0", "index -1", "0..2"]),
    "index out of range": (index_of(2, 3), ["data item 2", "index 3", "0..2"]),
    "duplicate index": (
        lambda data: data[2].__setitem__("index", data[0]["index"]),
        ["data items 0 and 2 both have index"],
    ),
    "no index": (lambda data: data[1].pop("index"), ["data item 1", "index None"]),
    "no embedding": (lambda data: data[1].pop("embedding"), ["data item 1", "no embedding"]),
    "one missing": (lambda data: data.pop(), ["2 embeddings for 3 inputs"]),
    "one too many": (lambda data: data.append(dict(data[0])), ["4 embeddings for 3 inputs"]),
    "empty vectors": (
        lambda data: [item.__setitem__("embedding", like(item, [])) for item in data],
        ["no values"],
    ),
    "ragged": (vector_of(1, lambda n: [0.5] * (n - 1)), ["input 1", "values"]),
    "NaN": (vector_of(2, lambda n: [math.nan] * n), ["input 2", "NaN or infinite"]),
    "infinity": (vector_of(0, lambda n: [0.5] * (n - 1) + [-math.inf]), ["input 0", "infinite"]),
    "not a list": (
        lambda data: item_for(data, 1).__setitem__("embedding", {"a": 1}),
        ["input 1", "dict"],
    ),
    "broken base64": (
        lambda data: item_for(data, 1).__setitem__("embedding", "AAAA"),  # 3 bytes
        ["input 1", "not whole float32s"],
    ),
}
FLOAT_ONLY: dict[str, tuple[Mutation, list[str]]] = {
    "a string in a vector": (
        lambda data: item_for(data, 1)["embedding"].__setitem__(3, "0.5"),
        ["input 1", "str"],
    ),
    "a bool in a vector": (
        lambda data: item_for(data, 0)["embedding"].__setitem__(0, True),
        ["input 0", "bool"],
    ),
}


def model(server: LoopbackServer, **options: Any) -> Any:
    return embedify.get_model(
        f"openai:{MODEL}", base_url=server.url, api_key=API_KEY, max_concurrency=1, **options
    )


@pytest.mark.parametrize(
    ("case", "wire"),
    [(case, wire) for case in CASES for wire in ("base64", "floats")]
    + [(case, "floats") for case in FLOAT_ONLY],  # base64 holds float32s only
)
def test_a_hostile_answer_is_refused_and_not_cached(case: str, wire: str, tmp_path: Path) -> None:
    mutate, words = {**CASES, **FLOAT_ONLY}[case]
    cache = tmp_path / "cache.sqlite3"
    fake = FakeOpenAI(ignore_base64=wire == "floats")
    with (
        LoopbackServer(hostile(fake, mutate)) as server,
        pytest.raises(EmbeddingJobError) as caught,
    ):
        model(server, cache=cache).embed(TEXTS)
    assert {type(error) for error in caught.value.failures.values()} == {BadResponseError}
    message = str(caught.value.failures[0])
    for word in [f"openai:{MODEL}", *words]:
        assert word in message, message
    assert API_KEY not in str(caught.value)
    assert EmbeddingCache.open(cache).stats()["entries"] == 0


@pytest.mark.parametrize("wire", ["base64", "floats"])
def test_rows_follow_their_index_in_any_order(wire: str) -> None:
    texts = [f"text number {i}" for i in range(12)]
    fake = FakeOpenAI(ignore_base64=wire == "floats")
    with LoopbackServer(hostile(fake, random.Random(7).shuffle)) as server:
        vectors = model(server).embed(texts)
    assert np.allclose(vectors, [vector_for(MODEL, text) for text in texts], atol=1e-6)
