"""Fault injection: an Ollama server answering hostile ``embeddings`` (wrong count, empty, ragged,
non-finite or non-numeric vectors; see :mod:`embedify.testing.hostile`), through httpx. Ollama's
vectors carry no index: their count and width are what can be checked, and every such answer is
refused naming the model and the item, with nothing of it cached."""

from __future__ import annotations

from pathlib import Path

import pytest
from embedify_ollama.testing import FakeOllama

import embedify
from embedify.errors import EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import TEXTS, VECTOR_CASES, garbled, inside, refused

pytestmark = pytest.mark.faults

MODEL = "nomic-embed-text"


@pytest.mark.parametrize("case", list(VECTOR_CASES))
def test_a_hostile_answer_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    garble, words = VECTOR_CASES[case]
    cache = tmp_path / "cache.sqlite3"
    with LoopbackServer(garbled(FakeOllama(), inside("embeddings", garble))) as server:
        model = embedify.get_model(
            f"ollama:{MODEL}", base_url=server.url, max_concurrency=1, cache=cache
        )
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(TEXTS)
    refused(caught.value, [f"ollama:{MODEL}", *words], cache=cache)


def test_an_answer_without_embeddings_is_refused(tmp_path: Path) -> None:
    with LoopbackServer(garbled(FakeOllama(), lambda body: {"model": MODEL})) as server:
        model = embedify.get_model(f"ollama:{MODEL}", base_url=server.url, cache=False)
        with pytest.raises(EmbeddingJobError, match="NoneType, not a list of vectors"):
            model.embed(TEXTS)
