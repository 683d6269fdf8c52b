"""Mistral through httpx against a loopback Mistral server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_mistral.model import NO_ROLES
from embedify_mistral.testing import API_KEY, FakeMistral, mistral_error, vector_for

import embedify
from embedify.quantize import quantize
from embedify.testing import ConformanceSuite, LoopbackServer


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)


@pytest.fixture
def fake() -> FakeMistral:
    return FakeMistral()


@pytest.fixture
def server(fake: FakeMistral) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def mistral(server: LoopbackServer, name: str = "mistral-embed", **options: Any) -> Any:
    return embedify.get_model(f"mistral:{name}", base_url=server.url, api_key=API_KEY, **options)


class TestMistralConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: mistral(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        wrong = embedify.get_model("mistral", base_url=server.url, api_key="wrong-key")
        unknown = mistral(server, "mistral-nothing")
        strict = mistral(server, truncate="error")
        return [
            (lambda: wrong.embed(["x"]), embedify.AuthenticationError),
            (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: strict.embed(["w " * 9000]), embedify.InputTooLongError),
        ]


class TestCodestralConformance(TestMistralConformance):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: mistral(server, "codestral-embed", **options)


def test_roles_send_the_same_request(server: LoopbackServer, fake: FakeMistral) -> None:
    model = mistral(server)
    query = model.embed_query("what is mistral?")
    document = model.embed_documents(["what is mistral?"])[0]
    bodies = [entry["body"] for entry in fake.log]
    assert (
        bodies[0]
        == bodies[1]
        == {
            "model": "mistral-embed",
            "input": ["what is mistral?"],
            "encoding_format": "float",
        }
    )
    assert np.allclose(query, document) and np.allclose(
        query, vector_for("mistral-embed", "what is mistral?"), atol=1e-6
    )
    assert model.info.roles == {"document": NO_ROLES, "query": NO_ROLES}


def test_codestral_dimensions_map_to_output_dimension(
    server: LoopbackServer, fake: FakeMistral
) -> None:
    plain = mistral(server, "codestral-embed").embed(["def f(): pass"])
    assert plain.shape == (1, 1536) and "output_dimension" not in fake.log[-1]["body"]
    for dimension in (256, 3072):
        vectors = mistral(server, "codestral-embed", dimensions=dimension).embed(["def f(): pass"])
        assert fake.log[-1]["body"]["output_dimension"] == dimension
        assert vectors.shape == (1, dimension)
        assert np.allclose(vectors[0], vector_for("codestral-embed", "def f(): pass", dimension))


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_codestral_precision_maps_to_output_dtype(
    server: LoopbackServer, fake: FakeMistral, precision: str
) -> None:
    codes = mistral(server, "codestral-embed", dimensions=256, precision=precision).embed(["x"])
    assert fake.log[-1]["body"]["output_dtype"] == precision
    floats = mistral(server, "codestral-embed", dimensions=256).embed(["x"])
    unit = np.stack([-np.ones(256), np.ones(256)])
    assert np.array_equal(codes, quantize(floats, precision, unit))  # type: ignore[arg-type]
    assert codes.shape == (1, 32 if precision.endswith("binary") else 256)


def test_mistral_embed_is_quantized_here(server: LoopbackServer, fake: FakeMistral) -> None:
    bits = mistral(server, precision="ubinary").embed(["x"])
    assert "output_dtype" not in fake.log[-1]["body"]
    assert np.array_equal(bits, quantize(mistral(server).embed(["x"]), "ubinary"))


def test_dimensions_are_refused_before_any_request(
    server: LoopbackServer, fake: FakeMistral
) -> None:
    with pytest.raises(embedify.ConfigurationError, match="fixed output dimension"):
        mistral(server, dimensions=512)
    with pytest.raises(embedify.ConfigurationError, match="up to 3072, not 4096"):
        mistral(server, "codestral-embed", dimensions=4096)
    assert fake.log == []


def test_limits_split_by_inputs_and_tokens(server: LoopbackServer, fake: FakeMistral) -> None:
    model = mistral(server, max_concurrency=2)
    assert model.info.limits == embedify.Limits(
        max_inputs_per_request=128, max_tokens_per_request=16384, max_tokens_per_input=8192
    )
    texts = [f"item {i}" for i in range(300)] + ["long " * 3000 + str(i) for i in range(8)]
    vectors = model.embed(texts)
    assert set(fake.statuses) == {200}
    sizes = [len(entry["body"]["input"]) for entry in fake.log]
    assert max(sizes) <= 128 and sum(sizes) == len(texts)
    words = [sum(len(t.split()) for t in entry["body"]["input"]) for entry in fake.log]
    assert max(words) <= 16384
    assert np.allclose(vectors[299], vector_for("mistral-embed", "item 299"), atol=1e-6)


@pytest.mark.parametrize(("limit", "value"), [("max_inputs", 30), ("max_tokens_per_request", 2000)])
def test_a_request_the_server_finds_too_large_is_split(limit: str, value: int) -> None:
    """A server whose limits are lower than declared: Mistral's 400 'Too many inputs' or 'Too
    many tokens' (code 3210) is a BatchTooLargeError, so the batch is split until it passes."""
    fake = FakeMistral(**{limit: value})
    texts = [f"{i} " + "w " * 59 for i in range(100)]  # 6000 words, within the declared limits
    with LoopbackServer(fake) as server:
        result = mistral(server, max_concurrency=1, batch_size=100).embed_with_report(texts)
    sent = [entry["body"]["input"] for entry in fake.log]
    assert len(sent[0]) == 100 and fake.statuses[0] == 400  # one request as planned, refused
    assert result.report.failed == 0 and result.report.splits >= 1
    passed = [batch for batch, status in zip(sent, fake.statuses) if status == 200]
    size = len if limit == "max_inputs" else lambda batch: sum(len(t.split()) for t in batch)
    assert sum(map(len, passed)) == 100 and max(map(size, passed)) <= value
    assert np.allclose(result.vectors[99], vector_for("mistral-embed", texts[99]), atol=1e-6)


def test_an_over_long_input_is_cut_when_truncate_allows(
    server: LoopbackServer, fake: FakeMistral
) -> None:
    vectors = mistral(server).embed(["w " * 9000, "short"])  # 9000 server tokens, ~6000 estimated
    assert vectors.shape == (2, 1024) and 400 in fake.statuses and fake.statuses[-1] == 200
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        mistral(server, truncate="error").embed(["w " * 9000])
    assert "exceeding max 8192 tokens" in str(caught.value)


def test_unknown_model_and_bad_key_errors(server: LoopbackServer) -> None:
    for model, expected, words in [
        (mistral(server, "mistral-nothing"), embedify.ModelNotFoundError, "Invalid model"),
        (
            embedify.get_model("mistral", base_url=server.url, api_key="wrong-key"),
            embedify.AuthenticationError,
            "MISTRAL_API_KEY",
        ),
    ]:
        with pytest.raises((expected, embedify.EmbeddingJobError)) as caught:
            model.embed(["x"])
        error = caught.value
        causes = (
            error.failures.values() if isinstance(error, embedify.EmbeddingJobError) else [error]
        )
        assert all(isinstance(cause, expected) and words in str(cause) for cause in causes)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_job_naming_mistral_and_the_variable(
    server: LoopbackServer, status: int
) -> None:
    """403: a model outside the account's tier (Mistral's error glossary)."""
    server.fail_next(mistral_error(status, "Forbidden", "invalid_request_error"))
    with pytest.raises((embedify.AuthenticationError, embedify.EmbeddingJobError)) as caught:
        mistral(server).embed(["x", "y"])
    error = caught.value
    failures = error.failures.values() if isinstance(error, embedify.EmbeddingJobError) else [error]
    assert all(isinstance(failure, embedify.AuthenticationError) for failure in failures)
    assert all(str(failure).startswith(f"mistral {status}") for failure in failures)
    assert "MISTRAL_API_KEY" in str(error) and len(server.requests) == 1  # not retried


def test_rate_limits_are_retried(fake: FakeMistral) -> None:
    fake.rate_limit_every = 2
    with LoopbackServer(fake) as server:
        result = mistral(server, batch_size=10, max_concurrency=2).embed_with_report(
            [f"t{i}" for i in range(60)]
        )
    assert 429 in fake.statuses
    assert result.report.rate_limited > 0 and result.report.failed == 0


def test_base64_wire(server: LoopbackServer, fake: FakeMistral) -> None:
    vectors = mistral(server, encoding_format="base64").embed(["x", "y"])
    assert fake.log[-1]["body"]["encoding_format"] == "base64"
    assert np.allclose(vectors[1], vector_for("mistral-embed", "y"), atol=1e-6)


def test_key_from_the_environment(
    server: LoopbackServer, fake: FakeMistral, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", API_KEY)
    assert embedify.get_model("mistral", base_url=server.url).embed(["x"]).shape == (1, 1024)
    assert fake.log[-1]["headers"]["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(
    server: LoopbackServer, fake: FakeMistral, suffix: str
) -> None:
    model = embedify.get_model("mistral", base_url=server.url + suffix, api_key=API_KEY)
    assert model.embed(["x"]).shape == (1, 1024) and fake.log[-1]["path"] == "/v1/embeddings"
    assert model.endpoint == server.url


def test_default_endpoint_and_missing_key() -> None:
    model = embedify.get_model("mistral")
    assert model.model_id == "mistral-embed" and model.endpoint == "https://api.mistral.ai"
    with pytest.raises(embedify.ConfigurationError, match=r"api_key=\.\.\. or set MISTRAL_API_KEY"):
        model.embed(["x"])
