"""LangChain embeddings as embedify models: embedify's conformance suite, the engine's cache,
report and batching on top, and errors translated for the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedify_langchain import LangChainEmbeddingModel, from_langchain
from embedify_openai.testing import API_KEY, FakeOpenAI
from langchain_core.embeddings import Embeddings

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer

QUERY_PROMPT = "Represent this question for searching relevant passages: "


@pytest.fixture(scope="module")
def huggingface(minilm_folder: str) -> Embeddings:
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=minilm_folder, query_encode_kwargs={"prompt": QUERY_PROMPT}
    )


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(FakeOpenAI()) as running:
        yield running


def langchain_openai(server: LoopbackServer, **kwargs: Any) -> Embeddings:
    """LangChain's OpenAI embeddings against the loopback server (no tiktoken download)."""
    from langchain_openai import OpenAIEmbeddings

    arguments = {
        "model": "text-embedding-3-small",
        "api_key": API_KEY,
        "base_url": f"{server.url}/v1",
        "max_retries": 0,
        "check_embedding_ctx_length": False,
        **kwargs,
    }
    return OpenAIEmbeddings(**arguments)


class TestWrappedHuggingFace(ConformanceSuite):
    """langchain-huggingface's embeddings, with a query prompt so the roles differ."""

    @pytest.fixture
    def make_model(self, huggingface: Embeddings):  # type: ignore[no-untyped-def]
        return lambda **options: from_langchain(huggingface, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        bad_key = from_langchain(langchain_openai(server, api_key="sk-wrong"))
        missing = from_langchain(langchain_openai(server, base_url=f"{server.url}/v2"))
        return [
            (lambda: bad_key.embed(["x"]), embedify.AuthenticationError),
            (lambda: missing.embed(["x"]), embedify.ModelNotFoundError),
        ]


class TestByName(ConformanceSuite):
    """``get_model("langchain:<module>.<Class>", ...)``; the class here is embedify's own
    LangChain embeddings over the fake model, which is quick and has distinct roles."""

    @pytest.fixture
    def make_model(self):  # type: ignore[no-untyped-def]
        name = "langchain:embedify_langchain.EmbedifyEmbeddings"
        return lambda **options: embedify.get_model(name, model="fake:32", **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        bad_key = embedify.get_model(
            "langchain:langchain_openai.OpenAIEmbeddings",
            api_key="sk-wrong",
            base_url=f"{server.url}/v1",
            check_embedding_ctx_length=False,
        )
        return [(lambda: bad_key.embed(["x"]), embedify.AuthenticationError)]


def test_documents_and_queries_map_to_langchain_methods(huggingface: Embeddings) -> None:
    model = from_langchain(huggingface)
    texts = ["Cats hunt mice.", "Rain floods the streets."]
    assert np.allclose(model.embed_documents(texts), huggingface.embed_documents(texts), atol=1e-5)
    assert np.allclose(model.embed_query(texts[0]), huggingface.embed_query(texts[0]), atol=1e-5)


def test_by_name_as_in_the_issue(minilm_folder: str) -> None:
    model = embedify.get_model(
        "langchain:langchain_huggingface.HuggingFaceEmbeddings",
        model_name=minilm_folder,
        batch_size=4,
    )
    assert isinstance(model, LangChainEmbeddingModel) and model.info.dimension is None
    result = model.embed_with_report([f"sentence {i}" for i in range(10)])
    assert result.vectors.shape == (10, 384) and result.report.requests == 3
    assert model.info.dimension == 384  # learned from the first answer


def test_engine_report_and_cache_on_top(tmp_path: Path, server: LoopbackServer) -> None:
    texts = ["alpha beta", "gamma delta", "alpha beta"]
    first = from_langchain(langchain_openai(server), cache=tmp_path / "cache.db")
    first.embed(["an earlier job"])  # the dimension is known from here on
    report = first.embed_with_report(texts).report
    assert report.deduplicated == 1 and report.embedded == 2
    second = from_langchain(langchain_openai(server), cache=tmp_path / "cache.db")
    report = second.embed_with_report(texts).report
    assert report.cached == 2 and report.requests == 0


def test_configuration_is_part_of_the_fingerprint_but_secrets_are_not(
    server: LoopbackServer,
) -> None:
    small = from_langchain(langchain_openai(server))
    large = from_langchain(langchain_openai(server, model="text-embedding-3-large"))
    other_key = from_langchain(langchain_openai(server, api_key="sk-another-key"))
    assert small.info.fingerprint() != large.info.fingerprint()
    assert small.info.fingerprint() == other_key.info.fingerprint()


def test_bad_input_names_what_langchain_expects() -> None:
    with pytest.raises(TypeError, match=r"langchain_core\.embeddings\.Embeddings"):
        from_langchain(object())  # type: ignore[arg-type]
    with pytest.raises(embedify.ConfigurationError, match="cannot import"):
        embedify.get_model("langchain:no_such_module.Embeddings")
    with pytest.raises(embedify.ConfigurationError, match="Embeddings subclass"):
        embedify.get_model("langchain:json.JSONDecoder")
    with pytest.raises(embedify.ConfigurationError, match="Name a LangChain embeddings class"):
        embedify.get_model("langchain")
