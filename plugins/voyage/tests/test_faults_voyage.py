"""Fault injection: a Voyage server answering hostile ``data`` (see
:mod:`embedify.testing.hostile`), through httpx. Every such answer is refused naming the model
and the item, and nothing of it is cached; a valid answer in any order gives the rows in input
order."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_voyage.testing import API_KEY, FakeVoyage

import embedify
from embedify.testing.hostile import Garbling, HostileIndexedAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileIndexedAnswers):
    source = "voyage:voyage-3.5"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeVoyage(), inside("data", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "voyage:voyage-3.5",
            base_url=url,
            api_key=API_KEY,
            encoding_format="float" if wire == "floats" else "base64",
            **options,
        )
