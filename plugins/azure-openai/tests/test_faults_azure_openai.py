"""Fault injection: Azure OpenAI answers go through the OpenAI plugin's checks (which its own
fault suite covers case by case): a hostile ``data`` is refused naming the deployment and the
item, and nothing of it is cached."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI

import embedify
from embedify.testing.hostile import INDEXED_CASES, Garbling, HostileIndexedAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileIndexedAnswers):
    source = "azure:small"
    secret = API_KEY
    cases = {
        case: INDEXED_CASES[case] for case in ("bool index", "NaN", "empty vectors", "one missing")
    }
    float_only_cases = {}
    wires = ("floats",)

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeOpenAI(azure=True, ignore_base64=True), inside("data", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "azure:small",
            azure_endpoint=url,
            api_key=API_KEY,
            api_version="2024-10-21",
            model="text-embedding-3-small",
            **options,
        )
