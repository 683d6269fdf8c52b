"""Fault injection: a Bedrock answering hostile embeddings (wrong count, empty, ragged,
non-finite or non-numeric vectors; see :mod:`embedify.testing.hostile`), through boto3. Cohere's
vectors carry no index, so count and width are checked; Titan's one vector per request is
checked alike. Every such answer is refused naming the model, and nothing of it is cached."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from embedify_bedrock.testing import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TITAN, FakeBedrock

import embedify
from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import TEXTS, VECTOR_CASES, garbled, refused

pytestmark = pytest.mark.faults

COHERE = "cohere.embed-english-v3"


@pytest.fixture(autouse=True)
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)


def model(server: LoopbackServer, name: str, cache: Path) -> Any:
    return embedify.get_model(
        f"bedrock:{name}", endpoint_url=server.url, max_concurrency=1, cache=cache
    )


@pytest.mark.parametrize("case", list(VECTOR_CASES))
def test_a_hostile_cohere_answer_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    garble, words = VECTOR_CASES[case]

    def rewrite(body: Any) -> Any:
        return {**body, "embeddings": {"float": garble(body["embeddings"]["float"])}}

    cache = tmp_path / "cache.sqlite3"
    with (
        LoopbackServer(garbled(FakeBedrock(), rewrite)) as server,
        pytest.raises(EmbeddingJobError) as caught,
    ):
        model(server, COHERE, cache).embed(TEXTS)
    refused(caught.value, [f"bedrock:{COHERE}", *words], cache=cache, secret=SECRET_ACCESS_KEY)


TITAN_CASES: dict[str, Any] = {
    "no embedding": None,
    "not a list": {"a": 1},
    "empty": [],
    "NaN": [math.nan] * 1024,
    "a string in it": ["0.5"] * 1024,
    "a bool in it": [True] * 1024,
    "ragged": "ragged",  # the second request's vector is one value short
}


@pytest.mark.parametrize("case", list(TITAN_CASES))
def test_a_hostile_titan_answer_is_refused_and_not_cached(case: str, tmp_path: Path) -> None:
    answers = iter(range(10))

    def rewrite(body: Any) -> Any:
        if TITAN_CASES[case] == "ragged":
            return {**body, "embedding": body["embedding"][: 1024 - next(answers) % 2]}
        return {**body, "embedding": TITAN_CASES[case]}

    cache = tmp_path / "cache.sqlite3"
    with (
        LoopbackServer(garbled(FakeBedrock(), rewrite)) as server,
        pytest.raises(EmbeddingJobError) as caught,
    ):
        model(server, TITAN, cache).embed(TEXTS)
    failures = caught.value.failures
    assert failures and {type(f) for f in failures.values()} == {BadResponseError}
    assert all(f"bedrock:{TITAN}" in str(f) for f in failures.values())
    assert EmbeddingCache.open(cache).stats()["entries"] == 0 or case == "ragged"
