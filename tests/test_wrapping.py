"""WrappedEmbeddingModel: another framework's embedding object as an embedify model, shown with
a tiny framework defined here (no LangChain or LlamaIndex needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedify
from embedify.model import Role
from embedify.protocol import Capabilities
from embedify.wrapping import WrappedEmbeddingModel


class TinyEmbedder:
    """A framework's embedding class: settings as attributes, a batch method for documents and
    a one-text method for queries, which differ."""

    def __init__(self, size: int = 4, api_key: str = "sk-secret", **extra: Any) -> None:
        self.size = size
        self.api_key = api_key
        self.extra = extra
        self.client = object()  # a live object, as real embeddings hold
        self.document_calls: list[list[str]] = []
        self.fail_with: Exception | None = None

    def embed_texts(self, texts: list[str]) -> list[list[float]]:
        self.document_calls.append(list(texts))
        if self.fail_with is not None:
            raise self.fail_with
        return [self._vector(text) for text in texts]

    def embed_question(self, text: str) -> list[float]:
        return self._vector("question: " + text)

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
        return np.random.default_rng(seed).standard_normal(self.size).tolist()


class NotAnEmbedder:
    pass


class TinyModel(WrappedEmbeddingModel[TinyEmbedder]):
    """All a third party writes to wrap the tiny framework."""

    provider = "tiny"
    capabilities = Capabilities(
        roles={"document": "embed_texts", "query": "embed_question"}, max_concurrency=1
    )
    wrapped_class = TinyEmbedder
    wrapped_class_name = "tiny.TinyEmbedder"
    wrapped_kind = "tiny embedder"
    example_class = "tiny.TinyEmbedder"
    example_package = "tiny-framework"

    def embed_wrapped(self, texts: list[str], role: Role) -> list[list[float]]:
        if role == "query":
            return [self.wrapped.embed_question(text) for text in texts]
        return self.wrapped.embed_texts(texts)


CLASS_PATH = f"{__name__}.TinyEmbedder"


def test_by_name_embedify_options_configure_the_engine_the_rest_build_the_class() -> None:
    model = TinyModel(CLASS_PATH, size=3, batch_size=2, colour="blue")
    assert model.wrapped.size == 3 and model.wrapped.extra == {"colour": "blue"}
    assert model.options.batch_size == 2
    result = model.embed_with_report([f"text {i}" for i in range(5)])
    assert result.vectors.shape == (5, 3) and result.report.requests == 3
    assert [len(call) for call in model.wrapped.document_calls] == [2, 2, 1]


def test_by_name_through_the_registry() -> None:
    embedify.register_model("tiny", TinyModel)
    model = embedify.get_model(f"tiny:{CLASS_PATH}", size=5)
    assert isinstance(model, TinyModel) and model.embed(["x"]).shape == (1, 5)


def test_roles_go_to_the_frameworks_methods() -> None:
    embedder = TinyEmbedder()
    model = TinyModel.wrapping(embedder)
    assert model.model_id == CLASS_PATH and model.wrapped is embedder
    assert np.allclose(model.embed_documents(["a", "b"]), embedder.embed_texts(["a", "b"]))
    assert np.allclose(model.embed_query("a"), embedder.embed_question("a"))
    assert model.info.roles == {"document": "embed_texts", "query": "embed_question"}


def test_one_request_at_a_time_unless_asked() -> None:
    assert TinyModel.wrapping(TinyEmbedder()).info.max_concurrency == 1
    assert TinyModel.wrapping(TinyEmbedder(), max_concurrency=4).info.max_concurrency == 4


def test_dimension_learned_from_the_first_answer() -> None:
    model = TinyModel.wrapping(TinyEmbedder(size=6))
    assert model.info.dimension is None
    model.embed(["x"])
    assert model.info.dimension == 6


def test_with_a_cache_the_first_job_is_reused(tmp_path: Path) -> None:
    """The dimension is part of the fingerprint; learning it from the first job's answer must
    not leave that job's vectors under another key."""
    texts = ["alpha", "beta"]
    model = TinyModel.wrapping(TinyEmbedder(), cache=tmp_path / "cache.db")
    vectors = model.embed(texts)
    assert model.embed_with_report(texts).report.cached == 2
    equal = TinyModel.wrapping(TinyEmbedder(), cache=tmp_path / "cache.db")
    result = equal.embed_with_report(texts)
    assert result.report.cached == 2 and result.report.requests == 0
    assert np.array_equal(result.vectors, vectors)


def test_settings_are_in_the_fingerprint_secrets_and_live_objects_are_not() -> None:
    def fingerprint(**settings: Any) -> str:
        return TinyModel.wrapping(TinyEmbedder(**settings)).info.fingerprint()

    assert fingerprint(size=4) != fingerprint(size=8)
    assert fingerprint(mode="fast") != fingerprint(mode="exact")
    assert fingerprint(api_key="sk-one") == fingerprint(api_key="sk-two")
    nested = {"headers": {"x": "1"}, "options": {"auth_token": "t1"}}
    assert fingerprint(**nested) == fingerprint(headers={"x": "1"}, options={"auth_token": "t2"})
    assert fingerprint(**nested) != fingerprint(headers={"x": "2"}, options={"auth_token": "t1"})


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Response:
    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code, self.headers = status_code, headers


class ResponseError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("request failed")
        self.response = response


class ConnectError(Exception):
    pass


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (StatusError(401), embedify.AuthenticationError),
        (StatusError(402), embedify.QuotaExceededError),  # the table HTTP providers read
        (StatusError(404), embedify.ModelNotFoundError),
        (StatusError(503), embedify.TransientError),
        (ResponseError(Response(429, {"Retry-After": "7"})), embedify.RateLimitError),
        (ConnectError("refused"), embedify.TransientError),
        (BrokenPipeError("closed"), embedify.TransientError),  # a ConnectionError
    ],
)
def test_errors_become_embedify_errors(raised: Exception, expected: type[Exception]) -> None:
    embedder = TinyEmbedder()
    embedder.fail_with = raised
    with pytest.raises(expected) as caught:
        TinyModel.wrapping(embedder).embed_batch(["x"], "document")
    assert caught.value.__cause__ is raised
    if isinstance(caught.value, embedify.RateLimitError):
        assert caught.value.retry_after == 7


def test_other_errors_pass_through_unchanged() -> None:
    embedder = TinyEmbedder()
    embedder.fail_with = ValueError("a bug in the framework")
    with pytest.raises(ValueError, match="a bug in the framework"):
        TinyModel.wrapping(embedder).embed_batch(["x"], "document")


def test_bad_input_names_what_the_framework_expects() -> None:
    with pytest.raises(TypeError, match=r"instance of tiny\.TinyEmbedder.*got NotAnEmbedder"):
        TinyModel.wrapping(NotAnEmbedder())
    with pytest.raises(embedify.ConfigurationError, match="Name a tiny embedder class"):
        TinyModel()
    with pytest.raises(embedify.ConfigurationError, match=r"cannot import.*tiny-framework"):
        TinyModel("no_such_module.TinyEmbedder")
    with pytest.raises(embedify.ConfigurationError, match=r"tiny\.TinyEmbedder subclass"):
        TinyModel(f"{__name__}.NotAnEmbedder")
    with pytest.raises(embedify.ConfigurationError, match=r"tiny\.TinyEmbedder subclass"):
        TinyModel(f"{__name__}.NoSuchClass")


def test_a_wrapper_must_say_how_the_framework_embeds() -> None:
    class Incomplete(WrappedEmbeddingModel[TinyEmbedder]):
        wrapped_class = TinyEmbedder

    with pytest.raises(TypeError, match="embed_wrapped"):
        Incomplete.wrapping(TinyEmbedder())
