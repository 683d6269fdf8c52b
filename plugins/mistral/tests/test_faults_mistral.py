"""Fault injection: a Mistral server answering hostile ``data`` (see
:mod:`embedify.testing.hostile`), through httpx. Every such answer is refused naming the model
and the item, and nothing of it is cached; a valid answer in any order gives the rows in input
order."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_mistral.testing import API_KEY, FakeMistral

import embedify
from embedify.testing.hostile import Garbling, HostileIndexedAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileIndexedAnswers):
    source = "mistral:mistral-embed"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeMistral(), inside("data", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "mistral:mistral-embed",
            base_url=url,
            api_key=API_KEY,
            encoding_format="float" if wire == "floats" else "base64",
            **options,
        )
