"""Fault injection: Azure OpenAI answers go through the OpenAI plugin's checks (which its own
fault suite covers case by case): a hostile ``data`` is refused naming the deployment and the
item, and nothing of it is cached."""

from __future__ import annotations

from pathlib import Path

import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI

import embedify
from embedify.errors import EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import INDEXED_CASES, TEXTS, garbled, refused

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("case", ["bool index", "NaN", "empty vectors", "one missing"])
def test_a_hostile_answer_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    garble, words = INDEXED_CASES[case]
    cache = tmp_path / "cache.sqlite3"
    fake = FakeOpenAI(azure=True, ignore_base64=True)
    with LoopbackServer(
        garbled(fake, lambda body: {**body, "data": garble(body["data"])})
    ) as server:
        model = embedify.get_model(
            "azure:small",
            azure_endpoint=server.url,
            api_key=API_KEY,
            api_version="2024-10-21",
            model="text-embedding-3-small",
            cache=cache,
            max_concurrency=1,
        )
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(TEXTS)
    refused(caught.value, ["azure:small", *words], cache=cache, secret=API_KEY)
