"""Fault injection: a Jina server answering hostile ``data`` (see :mod:`embedify.testing.hostile`),
through httpx. Every such answer is refused naming the model and the item, and nothing of it is
cached; a valid answer in any order gives the rows in input order."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_jina.testing import API_KEY, FakeJina

import embedify
from embedify.testing.hostile import Garbling, HostileIndexedAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileIndexedAnswers):
    source = "jina:jina-embeddings-v3"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeJina(), inside("data", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "jina:jina-embeddings-v3",
            base_url=url,
            api_key=API_KEY,
            embedding_type="float" if wire == "floats" else "base64",
            **options,
        )
