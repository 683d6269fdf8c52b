"""Fault injection: a Gemini server answering hostile ``embeddings`` (wrong count, empty, ragged,
non-finite or non-numeric ``values``; see :mod:`embedify.testing.hostile`), through httpx.
Gemini's vectors carry no index: their count and width are what can be checked, and every such
answer is refused naming the model and the item, with nothing of it cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from embedify_gemini.testing import API_KEY, FakeGemini

import embedify
from embedify.errors import EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import TEXTS, Garbling, HostileVectorAnswers, garbled, refused

pytestmark = pytest.mark.faults

MODEL = "gemini-embedding-001"


def in_values(garble: Garbling) -> Any:
    """Garble the list of ``values`` lists inside ``{"embeddings": [{"values": [...]}]}``."""

    def rewrite(body: Any) -> Any:
        rows = garble([item["values"] for item in body["embeddings"]])
        return {**body, "embeddings": [{"values": row} for row in rows]}

    return rewrite


class TestHostileAnswers(HostileVectorAnswers):
    source = f"gemini:{MODEL}"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeGemini(), in_values(garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(f"gemini:{MODEL}", base_url=url, api_key=API_KEY, **options)


SHAPES: dict[str, tuple[Any, list[str]]] = {
    "no embeddings list": (lambda body: {"embeddings": {"values": []}}, ["no embeddings list"]),
    "an item without values": (
        lambda body: {"embeddings": [*body["embeddings"][:2], {"value": [0.5]}]},
        ["embedding 2 has no values"],
    ),
    "an item that is a list": (
        lambda body: {"embeddings": [[0.5], *body["embeddings"][1:]]},
        ["embedding 0 has no values"],
    ),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_an_answer_of_another_shape_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    rewrite, words = SHAPES[case]
    cache = tmp_path / "cache.sqlite3"
    with LoopbackServer(garbled(FakeGemini(), rewrite)) as server:
        model = embedify.get_model(
            f"gemini:{MODEL}", base_url=server.url, api_key=API_KEY, max_concurrency=1, cache=cache
        )
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(TEXTS)
    refused(caught.value, [f"gemini:{MODEL}", *words], cache=cache, secret=API_KEY)
