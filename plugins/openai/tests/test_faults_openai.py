"""Fault injection: an OpenAI-compatible server answering hostile ``data`` (see
:mod:`embedify.testing.hostile`), through the unmodified openai SDK. Every such answer is
refused naming the model and the item, and nothing of it is cached; a valid answer in any order
gives the rows in input order."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI

import embedify
from embedify.testing.hostile import Garbling, HostileIndexedAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileIndexedAnswers):
    source = "openai:text-embedding-3-small"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeOpenAI(ignore_base64=wire == "floats"), inside("data", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "openai:text-embedding-3-small", base_url=url, api_key=API_KEY, **options
        )
