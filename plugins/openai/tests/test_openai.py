"""The OpenAI provider, through the unmodified openai SDK, against a loopback OpenAI server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_openai.model import decode
from embedify_openai.testing import API_KEY, FakeOpenAI, count_tokens, vector_for

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def model(server: LoopbackServer, name: str = "text-embedding-3-small", **options: Any) -> Any:
    return embedify.get_model(
        f"openai:{name}", base_url=f"{server.url}/v1", api_key=API_KEY, **options
    )


def expected(
    texts: list[str], name: str = "text-embedding-3-small", dims: int | None = None
) -> np.ndarray:
    return np.stack([vector_for(name, text, dims) for text in texts])


class TestOpenAIConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: model(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        bad_key = embedify.get_model("openai", base_url=f"{server.url}/v1", api_key="sk-wrong")
        missing = model(server, "text-embedding-3-smal")
        no_key = embedify.get_model("openai", base_url=f"{server.url}/v1")
        return [
            (lambda: bad_key.embed(["x"]), embedify.AuthenticationError),
            (lambda: missing.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: no_key.embed(["x"]), embedify.ConfigurationError),
        ]


def test_base64_on_the_wire_and_exact_rows(server: LoopbackServer, fake: FakeOpenAI) -> None:
    texts = ["It is raining cats and dogs here!", "second"]
    vectors = model(server, max_concurrency=1).embed(texts)
    assert np.allclose(vectors, expected(texts), atol=1e-7)
    sent = fake.log[-1]
    assert sent["body"]["encoding_format"] == "base64" and sent["body"]["input"] == texts
    assert sent["headers"]["x-stainless-retry-count"] == "0"


def test_compatible_server_that_sends_floats_and_an_unknown_model(fake: FakeOpenAI) -> None:
    fake.ignore_base64 = True
    with LoopbackServer(fake) as server:
        small = model(server)
        assert np.allclose(small.embed(["a", "b"]), expected(["a", "b"]), atol=1e-6)
        other = model(server, "text-embedding-3-large", max_inputs_per_request=16)
        assert other.info.limits.max_inputs_per_request == 16


def test_dimensions_are_native_for_v3_and_refused_for_ada(
    server: LoopbackServer, fake: FakeOpenAI
) -> None:
    vectors = model(server, dimensions=256).embed(["shorter"])
    assert vectors.shape == (1, 256) and fake.log[-1]["body"]["dimensions"] == 256
    assert np.allclose(vectors, expected(["shorter"], dims=256), atol=1e-6)
    requests_before = len(fake.log)
    with pytest.raises(embedify.ConfigurationError, match="fixed output dimension"):
        model(server, "text-embedding-ada-002", dimensions=256).embed(["x"])
    assert len(fake.log) == requests_before


def test_five_thousand_texts_through_a_429_storm_and_5xx() -> None:
    fake = FakeOpenAI(rate_limit_every=9, retry_after="0.05", error_rate=0.02, seed=4)
    texts = [f"document {i} " + "token " * (i % 50) for i in range(5000)]
    with LoopbackServer(fake) as server:
        result = model(server, max_concurrency=16, batch_size=40).embed_with_report(texts)
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    statuses = [entry["status"] for entry in fake.log]
    assert statuses.count(429) > 5 and {500, 503} & set(statuses)
    assert result.report.failed == 0 and result.report.rate_limited == statuses.count(429)
    assert all(entry["headers"]["x-stainless-retry-count"] == "0" for entry in fake.log)


def test_over_long_input_is_truncated_never_a_400_for_the_user(
    server: LoopbackServer, fake: FakeOpenAI
) -> None:
    texts = ["word " * 10_000, "a " * 10_000, "short"]  # the second fools the byte estimate
    result = model(server, truncate="end").embed_with_report(texts)
    assert result.report.truncated == [0, 1]
    assert np.allclose(result.vectors[2], expected(["short"])[0], atol=1e-6)
    assert 400 in [entry["status"] for entry in fake.log]  # the server's limit was the backstop
    with pytest.raises(embedify.InputTooLongError, match="input 0 has"):
        model(server, truncate="error").embed(texts)


def test_requests_stay_under_300k_tokens(server: LoopbackServer, fake: FakeOpenAI) -> None:
    """600k tokens in 150 inputs, and the user allows 150 inputs per request: only the client's
    token cap splits them, and it must do so before the server has to refuse anything."""
    texts = [f"text {i} " + "lorem " * 4000 for i in range(150)]
    vectors = model(server, max_concurrency=1, batch_size=150).embed(texts)
    assert np.allclose(vectors, expected(texts), atol=1e-6)
    sent = [sum(count_tokens(t) for t in entry["body"]["input"]) for entry in fake.log]
    assert len(sent) >= 3 and max(sent) <= 300_000
    assert {entry["status"] for entry in fake.log} == {200}


def test_exhausted_quota_fails_fast_without_retries(fake: FakeOpenAI) -> None:
    fake.quota_exhausted = True
    with LoopbackServer(fake) as server, pytest.raises(embedify.EmbeddingJobError) as caught:
        model(server, max_concurrency=1, batch_size=10).embed([f"t{i}" for i in range(100)])
    assert len(fake.log) == 1
    assert all(isinstance(e, embedify.QuotaExceededError) for e in caught.value.failures.values())


def test_rate_limit_error_carries_retry_after(fake: FakeOpenAI) -> None:
    fake.rate_limit_every = 1
    fake.retry_after = "7"
    with LoopbackServer(fake) as server, pytest.raises(embedify.RateLimitError) as caught:
        asyncio.run(model(server).aembed_batch(["x"], "document"))  # one request, no engine
    assert caught.value.retry_after == 7.0 and "rate_limit_exceeded" in str(caught.value)


def test_keys_never_appear(server: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-this-must-stay-secret"
    caplog.set_level(logging.DEBUG)
    wrong = embedify.get_model("openai", base_url=f"{server.url}/v1", api_key=secret)
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        wrong.embed(["x"])
    shown = str(caught.value) + repr(wrong) + repr(wrong.options) + str(wrong.info)
    shown += "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in shown and "Incorrect API key" in str(caught.value)


def test_environment_configures_the_client(
    server: LoopbackServer, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-9")
    embedify.get_model("openai:text-embedding-3-small").embed(["configured by env"])
    headers = fake.log[-1]["headers"]
    assert headers["openai-organization"] == "org-123" and headers["openai-project"] == "proj-9"


def test_a_wrong_path_names_the_url_not_the_model(server: LoopbackServer) -> None:
    wrong = embedify.get_model("openai", base_url=f"{server.url}/api/v1", api_key=API_KEY)
    with pytest.raises(embedify.ConfigurationError) as caught:
        wrong.embed(["x"])
    message = str(caught.value)
    assert f"{server.url}/api/v1/embeddings answered 404" in message
    assert "route is missing" in message and "model" not in message


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(server: LoopbackServer, fake: FakeOpenAI, suffix: str) -> None:
    compatible = embedify.get_model("openai", base_url=server.url + suffix, api_key=API_KEY)
    assert compatible.endpoint == f"{server.url}/v1"
    compatible.embed(["x"])
    assert fake.log[-1]["path"] == "/v1/embeddings"


def test_endpoint_names_the_server_never_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert embedify.get_model("openai").endpoint == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:8000")
    local = embedify.get_model("openai", api_key="sk-secret-value")
    assert local.endpoint == "http://gpu-box:8000/v1" and "secret" not in str(local.endpoint)


def test_an_unknown_host_fails_naming_it() -> None:
    lost = embedify.get_model(
        "openai", base_url="http://no-such-host.invalid/v1", api_key=API_KEY, max_retries=0
    )
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        lost.embed(["x"])
    (error,) = caught.value.failures.values()
    assert isinstance(error, embedify.ConnectionFailedError) and error.name_resolution
    assert error.host == "no-such-host.invalid" and "no-such-host.invalid" in str(error)


def test_default_headers_are_sent_and_secret(server: LoopbackServer, fake: FakeOpenAI) -> None:
    secret = "upstream-secret-789"
    proxied = model(server, default_headers={"X-Upstream-Key": secret})
    proxied.embed(["x"])
    assert fake.log[-1]["headers"]["x-upstream-key"] == secret
    assert secret not in repr(proxied.options) and secret not in repr(proxied)
    assert proxied.redact(f"echoed {secret}") == "echoed ***"


@pytest.mark.parametrize(
    ("indices", "message"),
    [([0, 0], "indices"), ([0, 2], "indices"), ([0], "1 embeddings for 2 inputs")],
)
def test_answers_that_do_not_match_the_inputs_are_refused(indices: list[int], message: str) -> None:
    items = [{"index": i, "embedding": [0.5, 0.5]} for i in indices]
    with pytest.raises(embedify.errors.BadResponseError, match=message):
        decode(items, 2)


def test_rows_land_by_their_index_whatever_the_order() -> None:
    items = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    assert decode(items, 2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
