"""Ollama through httpx against a loopback Ollama server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_ollama.testing import FakeOllama, vector_for

import embedify
from embedify.quantize import quantize
from embedify.testing import ConformanceSuite, LoopbackServer, Response

NOMIC = "nomic-embed-text"
MXBAI_QUERY = "Represent this sentence for searching relevant passages: "


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


@pytest.fixture
def fake() -> FakeOllama:
    return FakeOllama()


@pytest.fixture
def server(fake: FakeOllama) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def ollama(server: LoopbackServer, name: str = NOMIC, **options: Any) -> Any:
    return embedify.get_model(f"ollama:{name}", base_url=server.url, **options)


class TestOllamaConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: ollama(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        keyed = LoopbackServer(FakeOllama(api_key="ollama-secret")).__enter__()
        wrong_key = embedify.get_model("ollama", base_url=keyed.url, api_key="wrong-key")
        unknown = ollama(server, "llama-nothing")
        strict = ollama(server, "all-minilm", truncate="error")
        yield [
            (lambda: wrong_key.embed(["x"]), embedify.AuthenticationError),
            (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: strict.embed(["a " * 600]), embedify.InputTooLongError),
        ]
        keyed.__exit__()


@pytest.mark.parametrize(
    ("name", "query", "document"),
    [
        (NOMIC, "search_query: ", "search_document: "),
        ("mxbai-embed-large", MXBAI_QUERY, ""),
        ("all-minilm", "", ""),
    ],
)
def test_roles_are_the_models_prefixes_on_the_wire(
    server: LoopbackServer, fake: FakeOllama, name: str, query: str, document: str
) -> None:
    model = ollama(server, name)
    vector = model.embed_query("what is a llama?")
    model.embed_documents(["llamas are camelids"])
    sent = [entry["body"]["input"] for entry in fake.log]
    assert sent == [[f"{query}what is a llama?"], [f"{document}llamas are camelids"]]
    assert np.allclose(vector, vector_for(name, f"{query}what is a llama?"), atol=1e-6)


def test_more_roles_and_prompts_override(server: LoopbackServer, fake: FakeOllama) -> None:
    ollama(server).embed(["x"], "clustering")
    assert fake.log[-1]["body"]["input"] == ["clustering: x"]
    custom = ollama(server, "all-minilm", prompts={"query": "q: ", "code": "code: "})
    custom.embed_query("x")
    custom.embed(["y"], "code")
    assert [e["body"]["input"] for e in fake.log[-2:]] == [["q: x"], ["code: y"]]
    assert custom.info.roles["document"] == "no prefix"
    tagged = ollama(server, f"{NOMIC}:v1.5")  # another tag of a known family: its prefixes
    assert tagged.info.roles["query"] == "prefix 'search_query: '" and tagged.info.dimension is None


def test_dimensions_are_sent_and_refused_before_any_request(
    server: LoopbackServer, fake: FakeOllama
) -> None:
    vectors = ollama(server, dimensions=256).embed(["x"])
    assert fake.log[-1]["body"]["dimensions"] == 256 and vectors.shape == (1, 256)
    assert np.allclose(vectors[0], vector_for(NOMIC, "search_document: x", 256), atol=1e-6)
    with pytest.raises(embedify.ConfigurationError, match="fixed output dimension"):
        ollama(server, "all-minilm", dimensions=128)
    with pytest.raises(embedify.ConfigurationError, match="native 768"):
        ollama(server, dimensions=1024)
    assert len(fake.log) == 1


def test_precision_is_quantized_here(server: LoopbackServer, fake: FakeOllama) -> None:
    """Ollama returns floats only: the engine packs their signs (the wire is unchanged)."""
    floats = ollama(server, cache=False).embed(["a", "b"])
    model = ollama(server, precision="ubinary", cache=False)
    bits = model.embed(["a", "b"])
    assert model.info.quantized_by == "embedify" and fake.log[-1]["body"] == fake.log[0]["body"]
    assert bits.shape == (2, 96) and np.array_equal(bits, quantize(floats, "ubinary"))


def test_a_server_that_ignores_dimensions_is_named() -> None:
    with LoopbackServer(FakeOllama(version=(0, 11, 10))) as server:
        model = ollama(server, dimensions=256, max_retries=0)
        with pytest.raises(embedify.EmbeddingJobError, match=r"0\.11\.11"):
            model.embed(["x"])


def test_requests_respect_the_input_limit(server: LoopbackServer, fake: FakeOllama) -> None:
    texts = [f"passage {i}" for i in range(100)]
    vectors = ollama(server).embed(texts)
    sizes = [len(entry["body"]["input"]) for entry in fake.log]
    assert max(sizes) <= 32 and sum(sizes) == 100
    assert np.allclose(vectors[7], vector_for(NOMIC, "search_document: passage 7"), atol=1e-6)


def test_truncation_end_is_the_servers_start_is_ours(
    server: LoopbackServer, fake: FakeOllama
) -> None:
    long_text = "word " * 800  # over mxbai-embed-large's 512 tokens
    ollama(server, "mxbai-embed-large").embed([long_text])
    assert fake.log[-1]["body"]["truncate"] is True
    assert fake.log[-1]["body"]["input"] == [long_text]  # the server cuts it
    sent = len(fake.log)
    ollama(server, "mxbai-embed-large", truncate="start").embed([long_text])
    [entry] = fake.log[sent:]  # cut here before sending: no 400 round trip first
    body = entry["body"]
    assert body["truncate"] is False and len(body["input"][0]) < len(long_text)


def test_a_too_long_input_the_estimate_missed_is_shortened(
    server: LoopbackServer, fake: FakeOllama
) -> None:
    """'a ' is 2 bytes a token: the estimate (3 bytes a token) lets it through, and the
    server's 400 "the input length exceeds the context length" makes the engine cut it."""
    result = ollama(server, "all-minilm", truncate="start").embed_with_report(["a " * 600])
    assert result.report.failed == 0
    assert [e["status"] for e in fake.log][:1] == [400] and fake.log[-1]["status"] == 200


def test_num_ctx_lowers_the_declared_limit(server: LoopbackServer, fake: FakeOllama) -> None:
    model = ollama(server, model_options={"num_ctx": 256}, keep_alive="10m")
    assert model.info.limits.max_tokens_per_input == 256 - 6  # "search_document: ": 6 tokens
    model.embed(["x"])
    body = fake.log[-1]["body"]
    assert body["options"] == {"num_ctx": 256} and body["keep_alive"] == "10m"
    ollama(server).embed(["x"])
    assert "options" not in fake.log[-1]["body"] and "keep_alive" not in fake.log[-1]["body"]


def test_a_model_not_pulled_says_how_to_pull_it(server: LoopbackServer) -> None:
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        ollama(server, "bge-m3").embed(["x"])
    (error,) = caught.value.failures.values()
    assert isinstance(error, embedify.ModelNotFoundError) and "ollama pull bge-m3" in str(error)


@pytest.mark.parametrize(
    ("fake", "status"),
    [
        (FakeOllama(rate_limit_every=3), 429),  # ollama.com
        (FakeOllama(max_queue=1, latency=0.02), 503),  # a local queue that is full
    ],
)
def test_rate_limits_and_a_full_queue_are_waited_out(fake: FakeOllama, status: int) -> None:
    with LoopbackServer(fake) as server:
        result = ollama(server, batch_size=4, max_concurrency=4).embed_with_report(
            [f"t{i}" for i in range(40)]
        )
    assert status in fake.statuses and result.report.failed == 0
    report = result.report
    assert report.rate_limited > 0 and report.retries == report.rate_limited  # all rate limits


def test_a_key_is_sent_only_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOllama(api_key="ollama-secret")
    with LoopbackServer(fake) as server:
        with pytest.raises(embedify.EmbeddingJobError) as caught:
            ollama(server).embed(["x"])
        (error,) = caught.value.failures.values()
        assert isinstance(error, embedify.AuthenticationError) and "OLLAMA_API_KEY" in str(error)
        assert "authorization" not in fake.log[-1]["headers"]
        monkeypatch.setenv("OLLAMA_API_KEY", "ollama-secret")
        assert ollama(server).embed(["x"]).shape == (1, 768)
    assert fake.log[-1]["headers"]["authorization"] == "Bearer ollama-secret"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_job_naming_ollama_and_the_variable(
    server: LoopbackServer, status: int
) -> None:
    server.fail_next(Response(status, {"error": "unauthorized"}))
    with pytest.raises((embedify.AuthenticationError, embedify.EmbeddingJobError)) as caught:
        ollama(server, api_key="ollama-secret").embed(["x", "y"])
    error = caught.value
    failures = error.failures.values() if isinstance(error, embedify.EmbeddingJobError) else [error]
    assert all(isinstance(failure, embedify.AuthenticationError) for failure in failures)
    assert all(str(failure).startswith(f"ollama {status}") for failure in failures)
    assert "OLLAMA_API_KEY" in str(error) and "ollama-secret" not in str(error)
    assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/", "/v1"])
def test_base_url_with_or_without_api(
    server: LoopbackServer, fake: FakeOllama, suffix: str
) -> None:
    model = embedify.get_model("ollama", base_url=server.url + suffix)
    assert model.embed(["x"]).shape == (1, 768) and fake.log[-1]["path"] == "/api/embed"
    assert model.endpoint == server.url


def test_ollama_host_is_read_as_ollama_reads_it(
    server: LoopbackServer, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = embedify.get_model("ollama")
    assert bare.model_id == NOMIC and bare.endpoint == "http://localhost:11434"
    port = server.url.rpartition(":")[2]
    monkeypatch.setenv("OLLAMA_HOST", f"0.0.0.0:{port}")  # no scheme, the bind-all address
    model = embedify.get_model("ollama")
    assert model.endpoint == server.url and model.embed(["x"]).shape == (1, 768)
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    assert embedify.get_model("ollama").endpoint == "http://gpu-box:11434"
    assert ollama(server).endpoint == server.url  # the option wins


def test_a_wrong_path_names_the_url_not_the_model(server: LoopbackServer) -> None:
    with pytest.raises(embedify.ConfigurationError) as caught:
        embedify.get_model("ollama", base_url=f"{server.url}/ollama").embed(["x"])
    assert f"{server.url}/ollama/api/embed answered 404" in str(caught.value)


def test_normalize_false_is_refused() -> None:
    with pytest.raises(embedify.ConfigurationError, match="unit-length"):
        embedify.get_model("ollama", normalize=False)
