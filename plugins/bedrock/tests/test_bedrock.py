"""Bedrock through the real boto3 client against a loopback Bedrock (``endpoint_url``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_bedrock.testing import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    TITAN,
    FakeBedrock,
    aws_error,
    malformed,
    vector_for,
)

import embedify
from embedify.quantize import quantize
from embedify.testing import TEXTS, ConformanceSuite, LoopbackServer, Response

COHERE = "cohere.embed-english-v3"


@pytest.fixture(autouse=True)
def aws_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a region from the environment; nothing from this machine's AWS
    files, instance metadata or bearer token."""
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def fake() -> FakeBedrock:
    return FakeBedrock()


@pytest.fixture
def server(fake: FakeBedrock) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def bedrock(server: LoopbackServer, name: str = TITAN, **options: Any) -> Any:
    return embedify.get_model(f"bedrock:{name}", endpoint_url=server.url, **options)


@pytest.fixture
def stranger() -> Iterator[LoopbackServer]:
    """A Bedrock that does not know our access key."""
    with LoopbackServer(FakeBedrock(access_key_id="AKIASOMEONEELSE00000")) as running:
        yield running


def error_cases(
    server: LoopbackServer, stranger: LoopbackServer, name: str
) -> list[tuple[Any, type[Exception]]]:
    wrong_key = embedify.get_model(f"bedrock:{name}", endpoint_url=stranger.url)
    unknown = bedrock(server, name.replace("v", "v9"))
    strict = bedrock(server, name, truncate="error")
    too_long = "w " * (
        9000 if name == TITAN else 600
    )  # under the engine's estimate, not the server's
    return [
        (lambda: wrong_key.embed(["x"]), embedify.AuthenticationError),
        (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
        (lambda: strict.embed([too_long]), embedify.InputTooLongError),
    ]


class TestCohereConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: bedrock(server, COHERE, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer, stranger: LoopbackServer):  # type: ignore[no-untyped-def]
        return error_cases(server, stranger, COHERE)


class TestTitanConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: bedrock(server, TITAN, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer, stranger: LoopbackServer):  # type: ignore[no-untyped-def]
        return error_cases(server, stranger, TITAN)

    def test_too_large_request_is_split(self, make_model: Any) -> None:
        """Titan takes one text per request, so a 413 cannot be split: it fails that text
        alone, as BatchTooLargeError, and the others go through."""
        model = make_model(max_concurrency=1)
        self._inject(self._serving(model), Response(413, {"message": "Request Entity Too Large"}))
        with pytest.raises(embedify.EmbeddingJobError) as caught:
            model.embed([f"{text} (after a 413)" for text in TEXTS])
        failures = caught.value.failures
        assert len(failures) == 1 and isinstance(*failures.values(), embedify.BatchTooLargeError)
        assert np.isfinite(np.delete(caught.value.partial, list(failures), axis=0)).all()


def test_cohere_roles_reach_the_wire_and_differ(server: LoopbackServer, fake: FakeBedrock) -> None:
    model = bedrock(server, COHERE)
    query = model.embed_query("what is bedrock?")
    document = model.embed_documents(["bedrock serves models"])[0]
    model.embed(["x"], "clustering")
    model.embed(["y"], "classification")
    kinds = [entry["body"]["input_type"] for entry in fake.log]
    assert kinds == ["search_query", "search_document", "clustering", "classification"]
    assert np.allclose(query, vector_for(COHERE, "what is bedrock?", "search_query"), atol=1e-6)
    assert not np.allclose(query, model.embed_documents(["what is bedrock?"])[0], atol=1e-4)
    assert document.shape == (1024,)
    assert fake.log[0]["body"]["embedding_types"] == ["float"]


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_cohere_precision_maps_to_embedding_types(
    server: LoopbackServer, fake: FakeBedrock, precision: str
) -> None:
    codes = bedrock(server, COHERE, precision=precision).embed(["x", "y"])
    assert fake.log[-1]["body"]["embedding_types"] == [precision]
    floats = bedrock(server, COHERE).embed(["x", "y"])
    unit = np.stack([-np.ones(1024), np.ones(1024)])
    assert np.array_equal(codes, quantize(floats, precision, unit))  # type: ignore[arg-type]
    assert codes.shape == (2, 128 if precision.endswith("binary") else 1024)


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_titan_binary_comes_from_titan_packed_as_sentence_transformers_packs(
    server: LoopbackServer, fake: FakeBedrock, precision: str
) -> None:
    model = bedrock(server, precision=precision, dimensions=256)
    assert model.info.quantized_by == "provider"
    bits = model.embed(["x", "y"])
    assert all(entry["body"]["embeddingTypes"] == ["binary"] for entry in fake.log)
    floats = bedrock(server, dimensions=256).embed(["x", "y"])
    assert np.array_equal(bits, quantize(floats, precision))  # type: ignore[arg-type]
    assert bits.shape == (2, 32)


def test_titan_int8_is_quantized_here(server: LoopbackServer, fake: FakeBedrock) -> None:
    codes = bedrock(server, precision="int8").embed(["x"])
    assert "embeddingTypes" not in fake.log[-1]["body"]
    assert bedrock(server, precision="int8").info.quantized_by == "embedify"
    assert codes.dtype == np.int8 and codes.shape == (1, 1024)


def test_titan_binary_values_other_than_bits_are_refused(
    server: LoopbackServer, fake: FakeBedrock
) -> None:
    answer = {"embedding": [0.5] * 1024, "embeddingsByType": {"binary": [2] * 1024}}
    server.fail_next(Response(200, answer))
    with pytest.raises(embedify.EmbeddingJobError, match="other than 0 and 1"):
        bedrock(server, precision="ubinary", max_retries=0).embed(["x"])


def test_titan_has_no_roles_and_one_text_per_request(
    server: LoopbackServer, fake: FakeBedrock
) -> None:
    model = bedrock(server)
    texts = [f"text {i}" for i in range(5)]
    vectors = model.embed(texts)
    assert sorted(entry["body"]["inputText"] for entry in fake.log) == texts
    assert all(set(entry["body"]) == {"inputText"} for entry in fake.log)
    assert np.allclose(vectors, [vector_for(TITAN, text) for text in texts], atol=1e-6)
    assert np.allclose(model.embed_query("text 0"), vectors[0], atol=1e-6)
    assert fake.log[0]["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert fake.log[0]["headers"]["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/"
    )
    assert "/bedrock/aws4_request" in fake.log[0]["headers"]["authorization"]


def test_cohere_requests_hold_at_most_96_texts_in_order(
    server: LoopbackServer, fake: FakeBedrock
) -> None:
    texts = [f"item {i}" for i in range(200)]
    vectors = bedrock(server, COHERE, max_concurrency=1).embed(texts)
    sizes = [len(entry["body"]["texts"]) for entry in fake.log]
    assert max(sizes) == 96 and sum(sizes) == 200 and all(s == 200 for s in fake.statuses)
    expected = [vector_for(COHERE, text, "search_document") for text in texts]
    assert np.allclose(vectors, expected, atol=1e-6)


def test_titan_dimensions_and_normalize_reach_the_wire(
    server: LoopbackServer, fake: FakeBedrock
) -> None:
    vectors = bedrock(server, dimensions=256, normalize=False).embed(["x"])
    assert fake.log[-1]["body"] == {"inputText": "x", "dimensions": 256, "normalize": False}
    assert vectors.shape == (1, 256)
    assert np.allclose(vectors[0], vector_for(TITAN, "x", None, 256, normalize=False), atol=1e-6)


@pytest.mark.parametrize(("name", "dimensions"), [(TITAN, 300), (COHERE, 256)])
def test_unsupported_dimensions_are_refused_before_any_request(
    server: LoopbackServer, fake: FakeBedrock, name: str, dimensions: int
) -> None:
    with pytest.raises(embedify.ConfigurationError, match="dimension"):
        bedrock(server, name, dimensions=dimensions)
    assert fake.log == []


def test_rate_limits_are_retried_by_the_engine(fake: FakeBedrock) -> None:
    fake.rate_limit_every = 3
    with LoopbackServer(fake) as server:
        result = bedrock(server, max_concurrency=2).embed_with_report([f"t{i}" for i in range(20)])
    assert result.report.rate_limited > 0 and result.report.failed == 0
    assert 429 in fake.statuses


def test_botocore_does_not_retry(server: LoopbackServer, fake: FakeBedrock) -> None:
    server.fail_next(aws_error(503, "ServiceUnavailableException", "Service unavailable"))
    model = bedrock(server, max_retries=0)
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        model.embed(["x"])
    assert isinstance(caught.value.failures[0], embedify.TransientError)
    assert len(server.requests) == 1  # one attempt: the engine owns retries


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (aws_error(403, "AccessDeniedException", "You don't have access"), "AuthenticationError"),
        (aws_error(404, "ResourceNotFoundException", "Model not found"), "ModelNotFoundError"),
        (aws_error(400, "ServiceQuotaExceededException", "quota"), "QuotaExceededError"),
        (aws_error(408, "ModelTimeoutException", "took too long"), "RequestTimeoutError"),
        (aws_error(429, "ModelNotReadyException", "not ready"), "TransientError"),
        (aws_error(500, "InternalServerException", "oops"), "TransientError"),
        (aws_error(424, "ModelErrorException", "model failed"), "InvalidRequestError"),
        (malformed("#: extraneous key [x] is not permitted"), "InvalidRequestError"),
    ],
)
def test_aws_errors_map_to_embedify_errors(
    server: LoopbackServer, response: Response, expected: str
) -> None:
    server.fail_next(response, times=10)
    with pytest.raises(embedify.EmbedifyError) as caught:
        bedrock(server, max_retries=0).embed(["x"])
    error = caught.value
    failure = error.failures[0] if isinstance(error, embedify.EmbeddingJobError) else error
    assert type(failure).__name__ == expected, failure
    if expected == "AuthenticationError":
        assert "AWS_ACCESS_KEY_ID" in str(failure) and SECRET_ACCESS_KEY not in str(failure)


def test_a_too_long_titan_text_is_shortened_after_the_server_says_so(
    server: LoopbackServer, fake: FakeBedrock
) -> None:
    text = "w " * 9000  # the engine's estimate lets it through; the server counts 9000 tokens
    vectors = bedrock(server).embed([text])
    assert vectors.shape == (1, 1024)
    assert fake.statuses[0] == 400 and fake.statuses[-1] == 200
    assert len(fake.log[-1]["body"]["inputText"].split()) <= 8192
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        bedrock(server, truncate="error").embed([text])
    failure = caught.value.failures[0]
    assert isinstance(failure, embedify.InputTooLongError) and failure.tokens == 9000


def test_cohere_truncation_is_sent_and_too_many_texts_split(
    server: LoopbackServer, fake: FakeBedrock
) -> None:
    assert bedrock(server, COHERE, truncate="start").embed(["w " * 600]).shape == (1, 1024)
    assert fake.log[-1]["body"]["truncate"] == "START"
    server.fail_next(malformed("#/texts: expected maximum item count: 96, found: 4"))
    result = bedrock(server, COHERE, max_concurrency=1).embed_with_report(TEXTS)
    assert result.report.splits >= 1 and result.report.failed == 0


def test_missing_credentials_fail_before_any_request(
    server: LoopbackServer, fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(embedify.ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        bedrock(server).embed(["x"])
    assert fake.log == []


def test_region_from_option_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(embedify.ConfigurationError, match="region"):
        embedify.get_model("bedrock").embed(["x"])
    model = embedify.get_model("bedrock", region="eu-central-1")
    assert model.client().meta.endpoint_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert embedify.get_model("bedrock").client().meta.region_name == "us-west-2"


@pytest.mark.parametrize("suffix", ["", "/"])
def test_endpoint_url_with_or_without_slash(
    server: LoopbackServer, fake: FakeBedrock, suffix: str
) -> None:
    model = embedify.get_model("bedrock", endpoint_url=server.url + suffix)
    assert model.embed(["x"]).shape == (1, 1024)
    assert fake.log[-1]["path"].startswith("/model/") and model.endpoint == server.url


def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = embedify.get_model("bedrock", endpoint_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        model.embed(["x"])
    assert isinstance(caught.value.failures[0], embedify.ConnectionFailedError)


def test_default_model_and_unknown_families() -> None:
    assert embedify.get_model("bedrock").model_id == TITAN
    with pytest.raises(embedify.ConfigurationError, match="Titan text or Cohere embed"):
        embedify.get_model("bedrock:anthropic.claude-3-haiku-20240307-v1:0")
