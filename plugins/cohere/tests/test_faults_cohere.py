"""Fault injection: a Cohere server answering hostile ``embeddings`` (wrong count, empty, ragged,
non-finite or non-numeric vectors; see :mod:`embedify.testing.hostile`), through the unmodified
cohere SDK. Cohere's vectors carry no index: their count and width are what can be checked, and
every such answer is refused naming the model and the item, with nothing of it cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from embedify_cohere.testing import API_KEY, FakeCohere

import embedify
from embedify.errors import EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import TEXTS, VECTOR_CASES, garbled, refused

pytestmark = pytest.mark.faults

MODEL = "embed-english-v3.0"


@pytest.mark.parametrize("kind", ["float", "int8"])
@pytest.mark.parametrize("case", list(VECTOR_CASES))
def test_a_hostile_answer_is_refused_and_not_cached(case: str, kind: str, tmp_path: Path) -> None:
    garble, words = VECTOR_CASES[case]

    def rewrite(body: Any) -> Any:  # every embedding type the answer holds
        return {**body, "embeddings": {k: garble(v) for k, v in body["embeddings"].items()}}

    cache = tmp_path / "cache.sqlite3"
    with LoopbackServer(garbled(FakeCohere(), rewrite)) as server:
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
    refused(caught.value, [f"cohere:{MODEL}", *words], cache=cache, secret=API_KEY)
