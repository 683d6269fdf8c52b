"""Fault injection: an Ollama server answering hostile ``embeddings`` (wrong count, empty, ragged,
non-finite or non-numeric vectors; see :mod:`embedify.testing.hostile`), through httpx. Ollama's
vectors carry no index: their count and width are what can be checked, and every such answer is
refused naming the model and the item, with nothing of it cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from embedify_ollama.testing import FakeOllama

import embedify
from embedify.errors import EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import TEXTS, Garbling, HostileVectorAnswers, garbled, inside

pytestmark = pytest.mark.faults

MODEL = "nomic-embed-text"


class TestHostileAnswers(HostileVectorAnswers):
    source = f"ollama:{MODEL}"

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeOllama(), inside("embeddings", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(f"ollama:{MODEL}", base_url=url, **options)


def test_an_answer_without_embeddings_is_refused(tmp_path: Path) -> None:
    with LoopbackServer(garbled(FakeOllama(), lambda body: {"model": MODEL})) as server:
        model = embedify.get_model(f"ollama:{MODEL}", base_url=server.url, cache=False)
        with pytest.raises(EmbeddingJobError, match="NoneType, not a list of vectors"):
            model.embed(TEXTS)
