"""Fault injection: Azure OpenAI answers go through the OpenAI plugin's checks (which its own
fault suite covers case by case): a hostile ``data`` is refused naming the deployment and the
item, and nothing of it is cached."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI

import embedify
from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.testing import LoopbackServer, Request, Response

pytestmark = pytest.mark.faults

Mutation = Callable[[list[dict[str, Any]]], None]


def hostile(fake: FakeOpenAI, mutate: Mutation) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        response = fake(request)
        if response.status != 200 or not request.path.endswith("/embeddings"):
            return response
        body = json.loads(response.body)
        mutate(body["data"])
        return Response(200, body)

    return handler


def nan_in_second(data: list[dict[str, Any]]) -> None:
    data[1]["embedding"] = [math.nan] * 1536


CASES: dict[str, tuple[Mutation, str]] = {
    "bool index": (lambda data: data[1].__setitem__("index", True), "index True (bool)"),
    "NaN": (nan_in_second, "input 1 holds NaN"),
    "empty vectors": (
        lambda data: [item.__setitem__("embedding", []) for item in data],
        "no values",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_answer_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    mutate, words = CASES[case]
    cache = tmp_path / "cache.sqlite3"
    fake = FakeOpenAI(azure=True, ignore_base64=True)
    with LoopbackServer(hostile(fake, mutate)) as server:
        model = embedify.get_model(
            "azure:small",
            azure_endpoint=server.url,
            api_key=API_KEY,
            api_version="2024-10-21",
            model="text-embedding-3-small",
            cache=cache,
            max_concurrency=1,
        )
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(["one", "two", "three"])
    assert {type(error) for error in caught.value.failures.values()} == {BadResponseError}
    message = str(caught.value.failures[0])
    assert "azure:small" in message and words in message, message
    assert API_KEY not in str(caught.value)
    assert EmbeddingCache.open(cache).stats()["entries"] == 0
