"""Gemini through httpx against a loopback Gemini API server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_gemini.testing import API_KEY, FakeGemini, google_error, quota_exhausted, vector_for

import embedify
from embedify.errors import EmbeddingJobError
from embedify.quantize import quantize
from embedify.testing import ConformanceSuite, LoopbackServer

MODEL = "gemini-embedding-001"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def server(fake: FakeGemini) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def gemini(server: LoopbackServer, name: str = MODEL, **options: Any) -> Any:
    return embedify.get_model(f"gemini:{name}", base_url=server.url, api_key=API_KEY, **options)


class TestGeminiConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: gemini(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        wrong = embedify.get_model("gemini", base_url=server.url, api_key="wrong")
        unknown = gemini(server, "gemini-nothing")
        strict = gemini(server, truncate="error")
        return [
            (lambda: wrong.embed(["x"]), embedify.AuthenticationError),
            (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: strict.embed(["w " * 9000]), embedify.InputTooLongError),
        ]


def test_the_request_is_googles_shape(server: LoopbackServer, fake: FakeGemini) -> None:
    gemini(server).embed(["one", "two"])
    entry = fake.log[-1]
    assert entry["path"] == f"/v1beta/models/{MODEL}:batchEmbedContents"
    assert entry["headers"]["x-goog-api-key"] == API_KEY and "authorization" not in entry["headers"]
    assert entry["body"] == {
        "requests": [
            {
                "model": f"models/{MODEL}",
                "taskType": "RETRIEVAL_DOCUMENT",
                "content": {"parts": [{"text": text}]},
            }
            for text in ("one", "two")
        ]
    }


def test_roles_become_task_types_and_vectors_differ(
    server: LoopbackServer, fake: FakeGemini
) -> None:
    model = gemini(server)
    query = model.embed_query("what is a task type?")
    document = model.embed_documents(["what is a task type?"])[0]
    model.embed(["x"], "classification")
    model.embed(["x"], "clustering")
    sent = [{r["taskType"] for r in entry["body"]["requests"]} for entry in fake.log]
    assert sent == [{"RETRIEVAL_QUERY"}, {"RETRIEVAL_DOCUMENT"}, {"CLASSIFICATION"}, {"CLUSTERING"}]
    expected = vector_for(MODEL, "RETRIEVAL_QUERY", "what is a task type?")
    assert np.allclose(query, expected, atol=1e-6) and not np.allclose(query, document, atol=1e-3)


def test_task_types_option_overrides_a_role(server: LoopbackServer, fake: FakeGemini) -> None:
    model = gemini(server, task_types={"document": "SEMANTIC_SIMILARITY"})
    model.embed(["x"])
    assert fake.log[-1]["body"]["requests"][0]["taskType"] == "SEMANTIC_SIMILARITY"
    assert model.info.roles["document"] == "taskType=SEMANTIC_SIMILARITY"
    with pytest.raises(embedify.ConfigurationError, match="task_types"):
        gemini(server, task_types={"document": "RERANKING"})


def test_dimensions_become_output_dimensionality(server: LoopbackServer, fake: FakeGemini) -> None:
    vectors = gemini(server, dimensions=768).embed(["x", "y"])
    assert {r["outputDimensionality"] for r in fake.log[-1]["body"]["requests"]} == {768}
    cut = vector_for(MODEL, "RETRIEVAL_DOCUMENT", "x", 768)  # Google cuts without normalising
    assert np.allclose(vectors[0], cut / np.linalg.norm(cut), atol=1e-6)
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


@pytest.mark.parametrize("dimensions", [64, 4096])
def test_dimensions_outside_the_range_fail_before_any_request(
    server: LoopbackServer, fake: FakeGemini, dimensions: int
) -> None:
    with pytest.raises(embedify.ConfigurationError, match="dimension"):
        gemini(server, dimensions=dimensions)
    assert fake.log == []


def test_precision_is_quantized_here(server: LoopbackServer, fake: FakeGemini) -> None:
    """Gemini returns floats only: the engine packs their signs (the wire is unchanged)."""
    floats = gemini(server, dimensions=768, cache=False).embed(["a", "b"])
    model = gemini(server, dimensions=768, precision="binary", cache=False)
    bits = model.embed(["a", "b"])
    assert model.info.quantized_by == "embedify" and fake.log[-1]["body"] == fake.log[0]["body"]
    assert bits.shape == (2, 96) and np.array_equal(bits, quantize(floats, "binary"))


def test_more_than_100_inputs_are_split_and_kept_in_order(
    server: LoopbackServer, fake: FakeGemini
) -> None:
    texts = [f"item {i}" for i in range(250)]
    vectors = gemini(server, "text-embedding-004", batch_size=250, max_concurrency=1).embed(texts)
    sizes = [len(e["body"]["requests"]) for e in fake.log]
    assert max(sizes) == 100 and sum(sizes) == 250 and set(fake.statuses) == {200}
    expected = [vector_for("text-embedding-004", "RETRIEVAL_DOCUMENT", t) for t in texts[-3:]]
    assert vectors.shape == (250, 768) and np.allclose(vectors[-3:], expected, atol=1e-6)


def test_googles_too_many_requests_answer_splits(server: LoopbackServer) -> None:
    too_many = google_error(
        400,
        "INVALID_ARGUMENT",
        "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
    )
    server.fail_next(too_many)
    result = gemini(server, max_concurrency=1).embed_with_report(["a", "b", "c", "d"])
    assert result.report.failed == 0 and result.report.splits >= 1


def test_an_input_the_server_finds_too_long_is_cut_or_fails(fake: FakeGemini) -> None:
    fake.max_input_tokens = 40  # words; the engine's estimate lets 60 short words through
    long = " ".join(["w"] * 60)
    with LoopbackServer(fake) as server:
        result = gemini(server).embed_with_report(["short", long])
        assert result.report.failed == 0 and 400 in fake.statuses
        with pytest.raises(EmbeddingJobError) as caught:
            gemini(server, truncate="error").embed(["short", long])
    (failure,) = caught.value.failures.values()
    assert isinstance(failure, embedify.InputTooLongError) and failure.tokens == 60
    assert "INVALID_ARGUMENT" in str(failure)


def test_rate_limits_are_retried(fake: FakeGemini) -> None:
    fake.rate_limit_every = 2
    with LoopbackServer(fake) as server:
        result = gemini(server, batch_size=10, max_concurrency=2).embed_with_report(
            [f"t{i}" for i in range(60)]
        )
    assert result.report.rate_limited > 0 and result.report.failed == 0


def test_the_retry_delay_in_googles_body_reaches_the_engine(server: LoopbackServer) -> None:
    """Google's wait is in ``RetryInfo``, not a header: a 300 s one is over ``max_retry_wait``,
    so the engine stops at once quoting it (read as no wait, it would retry and succeed)."""
    server.fail_next(quota_exhausted("EmbedContentRequestsPerMinutePerProjectPerModel", "300s"))
    with pytest.raises(EmbeddingJobError) as caught:
        gemini(server, max_retry_wait=60).embed(["after a 429"])
    (failure,) = caught.value.failures.values()
    assert isinstance(failure, embedify.RateLimitError) and failure.retry_after == 300
    assert "asked to wait 300 s" in str(failure) and "RESOURCE_EXHAUSTED" in str(failure)
    assert len(server.requests) == 1


def test_a_spent_daily_quota_stops_the_job(fake: FakeGemini) -> None:
    fake.daily_quota_spent = True
    with LoopbackServer(fake) as server, pytest.raises(EmbeddingJobError) as caught:
        gemini(server, batch_size=1, max_concurrency=1).embed(["a", "b", "c"])
    failures = caught.value.failures.values()
    assert all(isinstance(f, embedify.QuotaExceededError) for f in failures) and len(failures) == 3
    assert "daily quota" in str(caught.value) and len(fake.log) == 1


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (
            google_error(403, "PERMISSION_DENIED", "Permission denied."),
            embedify.AuthenticationError,
        ),
        (
            google_error(400, "FAILED_PRECONDITION", "User location is not supported."),
            embedify.QuotaExceededError,
        ),
    ],
)
def test_account_errors_stop_the_job(server: LoopbackServer, answer: Any, kind: type) -> None:
    server.fail_next(answer)
    with pytest.raises(EmbeddingJobError) as caught:
        gemini(server).embed(["x"])
    (failure,) = caught.value.failures.values()
    assert isinstance(failure, kind) and str(failure).startswith("gemini ")
    if kind is embedify.AuthenticationError:
        assert "GOOGLE_API_KEY or GEMINI_API_KEY" in str(failure)


def test_a_wrong_key_names_the_variables(server: LoopbackServer) -> None:
    wrong = embedify.get_model("gemini", base_url=server.url, api_key="not-the-key")
    with pytest.raises(EmbeddingJobError) as caught:
        wrong.embed(["x"])
    (failure,) = caught.value.failures.values()
    message = str(failure)
    assert isinstance(failure, embedify.AuthenticationError)
    assert message.startswith("gemini 400 INVALID_ARGUMENT: API key not valid")
    assert "GOOGLE_API_KEY or GEMINI_API_KEY" in message and "not-the-key" not in message


@pytest.mark.parametrize("variable", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
def test_key_from_either_variable(
    server: LoopbackServer, fake: FakeGemini, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, API_KEY)
    assert embedify.get_model("gemini", base_url=server.url).embed(["x"]).shape == (1, 3072)
    assert fake.log[-1]["headers"]["x-goog-api-key"] == API_KEY


def test_google_api_key_takes_precedence(
    server: LoopbackServer, fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "the-other-key")
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    embedify.get_model("gemini", base_url=server.url).embed(["x"])
    assert fake.log[-1]["headers"]["x-goog-api-key"] == API_KEY


@pytest.mark.parametrize("suffix", ["", "/v1beta", "/v1beta/"])
def test_base_url_with_or_without_v1beta(
    server: LoopbackServer, fake: FakeGemini, suffix: str
) -> None:
    model = embedify.get_model("gemini", base_url=server.url + suffix, api_key=API_KEY)
    assert model.embed(["x"]).shape == (1, 3072)
    assert fake.log[-1]["path"] == f"/v1beta/models/{MODEL}:batchEmbedContents"
    assert model.endpoint == server.url


def test_a_models_prefix_in_the_name_is_accepted(server: LoopbackServer, fake: FakeGemini) -> None:
    gemini(server, f"models/{MODEL}").embed(["x"])
    assert fake.log[-1]["path"] == f"/v1beta/models/{MODEL}:batchEmbedContents"


def test_a_wrong_path_names_the_url_not_the_model(server: LoopbackServer) -> None:
    wrong = embedify.get_model("gemini", base_url=f"{server.url}/api", api_key=API_KEY)
    with pytest.raises(embedify.ConfigurationError) as caught:
        wrong.embed(["x"])
    assert f"{server.url}/api/v1beta/models/{MODEL}:batchEmbedContents answered 404" in str(
        caught.value
    )


def test_default_model_endpoint_and_missing_key() -> None:
    model = embedify.get_model("gemini")
    assert model.model_id == MODEL and model.info.dimension == 3072
    assert model.endpoint == "https://generativelanguage.googleapis.com"
    assert model.info.limits.max_inputs_per_request == 100
    with pytest.raises(
        embedify.ConfigurationError, match=r"api_key=\.\.\. or set GOOGLE_API_KEY or GEMINI_API_KEY"
    ):
        model.embed(["x"])
