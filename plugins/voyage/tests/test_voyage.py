"""Voyage AI through httpx against a loopback Voyage server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_voyage import register_models
from embedify_voyage.model import KNOWN_MODELS
from embedify_voyage.testing import API_KEY, FakeVoyage, quantized, tokens_of, vector_for

import embedify
from embedify.quantize import DTYPES, quantize
from embedify.testing import ConformanceSuite, LoopbackServer, Response


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)


@pytest.fixture
def fake() -> FakeVoyage:
    return FakeVoyage()


@pytest.fixture
def server(fake: FakeVoyage) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def voyage(server: LoopbackServer, name: str = "voyage-3.5", **options: Any) -> Any:
    return embedify.get_model(f"voyage:{name}", base_url=server.url, api_key=API_KEY, **options)


class TestVoyageConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: voyage(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        wrong = embedify.get_model("voyage", base_url=server.url, api_key="wrong")
        unknown = voyage(server, "voyage-nothing")
        strict = voyage(server, truncate="error")
        return [
            (lambda: wrong.embed(["x"]), embedify.AuthenticationError),
            (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: strict.embed(["w " * 50_000]), embedify.InputTooLongError),
        ]


class TestVoyageLawConformance(TestVoyageConformance):
    """A model of fixed dimension: ``dimensions=`` is refused before any request."""

    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: voyage(server, "voyage-law-2", **options)


def test_roles_become_input_type_on_the_wire(server: LoopbackServer, fake: FakeVoyage) -> None:
    model = voyage(server)
    query = model.embed_query("what is voyage?")
    document = model.embed_documents(["voyage embeds text"])[0]
    model.embed(["a label"], "classification")
    assert [entry["body"]["input_type"] for entry in fake.log] == ["query", "document", None]
    assert np.allclose(query, vector_for("voyage-3.5", "query", "what is voyage?"), atol=1e-6)
    assert np.allclose(
        document, vector_for("voyage-3.5", "document", "voyage embeds text"), atol=1e-6
    )
    assert model.info.roles["query"] == "input_type=query"


def test_dimensions_map_to_output_dimension(server: LoopbackServer, fake: FakeVoyage) -> None:
    model = voyage(server, "voyage-code-3", dimensions=256)
    vectors = model.embed(["def f(): pass"])
    assert fake.log[-1]["body"]["output_dimension"] == 256 and vectors.shape == (1, 256)
    expected = vector_for("voyage-code-3", "document", "def f(): pass", 256)
    assert np.allclose(vectors[0], expected, atol=1e-6)
    voyage(server).embed(["x"])
    assert "output_dimension" not in fake.log[-1]["body"]


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_maps_to_output_dtype(
    server: LoopbackServer, fake: FakeVoyage, precision: str
) -> None:
    model = voyage(server, "voyage-3.5", precision=precision, dimensions=512)
    texts = ["quantized by voyage", "twice"]
    codes = model.embed(texts)
    body = fake.log[-1]["body"]
    assert body["output_dtype"] == precision and "encoding_format" not in body
    floats = np.stack([vector_for("voyage-3.5", "document", text, 512) for text in texts])
    expected = quantized(floats, precision)
    assert codes.dtype == DTYPES[precision] and codes.tolist() == expected
    assert codes.shape == (2, 64 if precision.endswith("binary") else 512)
    assert model.info.quantized_by == "provider"


def test_a_model_without_output_dtype_is_quantized_here(
    server: LoopbackServer, fake: FakeVoyage
) -> None:
    floats = voyage(server, "voyage-law-2").embed(["a contract"])
    bits = voyage(server, "voyage-law-2", precision="binary").embed(["a contract"])
    assert "output_dtype" not in fake.log[-1]["body"]
    assert np.array_equal(bits, quantize(floats, "binary"))


@pytest.mark.parametrize(
    ("name", "dimensions", "words"),
    [("voyage-3.5", 300, "allowed: 256, 512, 1024, 2048"), ("voyage-law-2", 512, "fixed")],
)
def test_unsupported_dimensions_are_refused_before_any_request(
    server: LoopbackServer, fake: FakeVoyage, name: str, dimensions: int, words: str
) -> None:
    with pytest.raises(embedify.ConfigurationError, match=words):
        voyage(server, name, dimensions=dimensions)
    assert fake.log == []


def test_requests_keep_to_the_models_token_total(server: LoopbackServer, fake: FakeVoyage) -> None:
    texts = [f"{i} " + "lorem ipsum " * 250 for i in range(200)]  # about 3 KB each
    vectors = voyage(server, "voyage-3-large", max_concurrency=1).embed(texts)
    sent = [entry["body"]["input"] for entry in fake.log]
    assert len(sent) >= 2 and sum(map(len, sent)) == len(texts)
    assert all(sum(map(tokens_of, batch)) <= 120_000 for batch in sent)
    assert all(entry["status"] == 200 for entry in fake.log)
    assert np.allclose(vectors[7], vector_for("voyage-3-large", "document", texts[7]), atol=1e-6)


def test_requests_keep_to_1000_inputs(server: LoopbackServer, fake: FakeVoyage) -> None:
    vectors = voyage(server, "voyage-3.5-lite").embed([f"item {i}" for i in range(1100)])
    assert vectors.shape == (1100, 1024) and len(fake.log) >= 2
    assert max(len(entry["body"]["input"]) for entry in fake.log) <= 1000


@pytest.mark.parametrize("limit", ["max_inputs", "max_batch_tokens"])
def test_a_request_the_server_finds_too_large_is_split(limit: str) -> None:
    fake = FakeVoyage(**{limit: 3 if limit == "max_inputs" else 40})
    texts = [f"text {i} with a few more words in it" for i in range(12)]
    with LoopbackServer(fake) as server:
        result = voyage(server, max_concurrency=1).embed_with_report(texts)
    assert result.report.failed == 0 and result.report.splits >= 1
    assert 400 in fake.statuses and fake.statuses[-1] == 200
    assert np.allclose(result.vectors[3], vector_for("voyage-3.5", "document", texts[3]), atol=1e-6)


def test_truncation_follows_the_truncate_option(server: LoopbackServer, fake: FakeVoyage) -> None:
    for truncate, sent in [("end", True), ("start", False), ("error", False)]:
        voyage(server, truncate=truncate).embed(["short"])
        assert fake.log[-1]["body"]["truncation"] is sent, truncate


def test_end_lets_voyage_cut_an_over_long_input(server: LoopbackServer, fake: FakeVoyage) -> None:
    long = "word " * 30_000  # 150 KB: over 32K tokens by the engine's count and the server's
    result = voyage(server, truncate="end").embed_with_report([long])
    assert fake.log[-1]["body"]["input"] == [long] and fake.log[-1]["status"] == 200
    assert result.report.items[0].truncated


def test_an_input_the_server_finds_too_long_is_cut_from_the_start() -> None:
    fake = FakeVoyage(context_window=20)  # the server's window is smaller than declared
    texts = ["short one", "a much longer text " * 20 + "THE END"]
    with LoopbackServer(fake) as server:
        result = voyage(server, truncate="start", max_concurrency=1).embed_with_report(texts)
    assert result.report.failed == 0 and 400 in fake.statuses
    last = fake.log[-1]["body"]["input"]
    assert any(text.endswith("THE END") and tokens_of(text) <= 20 for text in last)


def test_an_input_too_long_with_truncate_error_fails_naming_it() -> None:
    fake = FakeVoyage(context_window=20)
    with LoopbackServer(fake) as server, pytest.raises(embedify.EmbeddingJobError) as caught:
        voyage(server, truncate="error").embed(["fine", "too long for the window " * 10])
    failure = caught.value.failures[1]
    assert isinstance(failure, embedify.InputTooLongError) and 0 not in caught.value.failures
    assert failure.index == 1 and "context window of 20 tokens" in str(failure)


def test_rate_limits_are_retried_after_retry_after(fake: FakeVoyage) -> None:
    fake.rate_limit_every = 2
    with LoopbackServer(fake) as server:
        result = voyage(server, batch_size=10, max_concurrency=1).embed_with_report(
            [f"t{i}" for i in range(20)]
        )
    assert result.report.rate_limited > 0 and result.report.failed == 0
    assert 429 in fake.statuses


def test_base64_wire(server: LoopbackServer, fake: FakeVoyage) -> None:
    vectors = voyage(server, encoding_format="base64").embed(["x", "y"])
    assert fake.log[-1]["body"]["encoding_format"] == "base64"
    assert np.allclose(vectors[1], vector_for("voyage-3.5", "document", "y"), atol=1e-6)


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(server: LoopbackServer, fake: FakeVoyage, suffix: str) -> None:
    model = embedify.get_model("voyage", base_url=server.url + suffix, api_key=API_KEY)
    assert model.embed(["x"]).shape == (1, 1024) and fake.log[-1]["path"] == "/v1/embeddings"
    assert model.endpoint == server.url


def test_key_from_the_environment(
    server: LoopbackServer, fake: FakeVoyage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", API_KEY)
    embedify.get_model("voyage", base_url=server.url).embed(["x"])
    assert fake.log[-1]["headers"]["authorization"] == f"Bearer {API_KEY}"


def test_a_rejected_key_names_the_variable(server: LoopbackServer) -> None:
    wrong = embedify.get_model("voyage", base_url=server.url, api_key="pa-wrong-key")
    with pytest.raises((embedify.AuthenticationError, embedify.EmbeddingJobError)) as caught:
        wrong.embed(["x"])
    assert "VOYAGE_API_KEY" in str(caught.value) and "pa-wrong-key" not in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_job_naming_voyage_and_the_variable(
    server: LoopbackServer, status: int
) -> None:
    server.fail_next(Response(status, {"detail": "Provided API key is invalid."}))
    with pytest.raises((embedify.AuthenticationError, embedify.EmbeddingJobError)) as caught:
        voyage(server).embed(["x", "y"])
    error = caught.value
    failures = error.failures.values() if isinstance(error, embedify.EmbeddingJobError) else [error]
    assert all(isinstance(failure, embedify.AuthenticationError) for failure in failures)
    assert all(str(failure).startswith(f"voyage {status}") for failure in failures)
    assert "VOYAGE_API_KEY" in str(error) and len(server.requests) == 1  # not retried


def test_default_model_endpoint_and_missing_key() -> None:
    model = embedify.get_model("voyage")
    assert model.model_id == "voyage-3.5" and model.endpoint == "https://api.voyageai.com"
    assert model.info.limits.max_tokens_per_request == 320_000
    with pytest.raises(embedify.ConfigurationError, match=r"api_key=\.\.\. or set VOYAGE_API_KEY"):
        model.embed(["x"])


def test_registered_names_are_the_known_models() -> None:
    registered: dict[str, Any] = {}
    register_models(lambda name, target, **details: registered.update(details))
    assert set(registered["models"]) == set(KNOWN_MODELS)
    assert registered["default_model"] in KNOWN_MODELS
