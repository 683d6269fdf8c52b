"""Fault injection: a Cohere server answering hostile ``embeddings`` (no index: count and width are
what can be checked) (see :mod:`embedify.testing.hostile`), through the unmodified cohere SDK.
Every such answer is refused naming the model and the item, and nothing of it is cached."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_cohere.testing import API_KEY, FakeCohere

import embedify
from embedify.testing.hostile import Garbling, HostileVectorAnswers, garbled

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileVectorAnswers):
    source = "cohere:embed-english-v3.0"
    secret = API_KEY
    wires = ("float", "int8")  # embedding types

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(
            FakeCohere(),
            lambda body: {
                **body,
                "embeddings": {k: garble(v) for k, v in body["embeddings"].items()},
            },
        )

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "cohere:embed-english-v3.0",
            base_url=url,
            api_key=API_KEY,
            precision="float32" if wire == "float" else wire,
            **options,
        )
