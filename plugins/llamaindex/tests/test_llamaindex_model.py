"""LlamaIndex embeddings as embedify models: embedify's conformance suite, the engine's cache,
report and batching on top, and errors translated for the engine."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedify_llamaindex import LlamaIndexEmbeddingModel, from_llamaindex
from embedify_openai.testing import API_KEY, FakeOpenAI
from llama_index.core.base.embeddings.base import BaseEmbedding
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer

HF = "llama_index.embeddings.huggingface.HuggingFaceEmbedding"
QUERY_INSTRUCTION = "Represent this question for searching relevant passages: "


@pytest.fixture(scope="module")
def huggingface(minilm_folder: str) -> BaseEmbedding:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=minilm_folder, query_instruction=QUERY_INSTRUCTION)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(FakeOpenAI()) as running:
        yield running


def llamaindex_openai(server: LoopbackServer, **kwargs: Any) -> BaseEmbedding:
    from llama_index.embeddings.openai import OpenAIEmbedding

    arguments = {"api_key": API_KEY, "api_base": f"{server.url}/v1", "max_retries": 1, **kwargs}
    return OpenAIEmbedding(**arguments)


class TestWrappedHuggingFace(ConformanceSuite):
    """LlamaIndex's HuggingFace embedding, with a query instruction so the roles differ."""

    @pytest.fixture
    def make_model(self, huggingface: BaseEmbedding):  # type: ignore[no-untyped-def]
        return lambda **options: from_llamaindex(huggingface, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        bad_key = from_llamaindex(llamaindex_openai(server, api_key="sk-wrong"))
        missing = from_llamaindex(llamaindex_openai(server, api_base=f"{server.url}/v2"))
        return [
            (lambda: bad_key.embed(["x"]), embedify.AuthenticationError),
            (lambda: missing.embed(["x"]), embedify.ModelNotFoundError),
        ]


class TestByName(ConformanceSuite):
    """``get_model("llamaindex:<module>.<Class>", ...)``; the class here is embedify's own
    LlamaIndex embedding over the fake model, which is quick and has distinct roles."""

    @pytest.fixture
    def make_model(self):  # type: ignore[no-untyped-def]
        name = "llamaindex:embedify_llamaindex.EmbedifyEmbedding"
        return lambda **options: embedify.get_model(name, model_name="fake:32", **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        bad_key = embedify.get_model(
            "llamaindex:llama_index.embeddings.openai.OpenAIEmbedding",
            api_key="sk-wrong",
            api_base=f"{server.url}/v1",
        )
        return [(lambda: bad_key.embed(["x"]), embedify.AuthenticationError)]


def test_roles_map_to_llamaindex_text_and_query_methods(huggingface: BaseEmbedding) -> None:
    model = from_llamaindex(huggingface)
    texts = ["Cats hunt mice.", "Rain floods the streets."]
    assert np.allclose(
        model.embed_documents(texts), huggingface.get_text_embedding_batch(texts), atol=1e-5
    )
    assert np.allclose(
        model.embed_query(texts[0]), huggingface.get_query_embedding(texts[0]), atol=1e-5
    )


def test_by_name_builds_the_class_with_the_other_keywords(minilm_folder: str) -> None:
    model = embedify.get_model(
        f"llamaindex:{HF}", model_name=minilm_folder, embed_batch_size=4, batch_size=3
    )
    assert isinstance(model, LlamaIndexEmbeddingModel)
    assert model.embedding.embed_batch_size == 4 and model.options.batch_size == 3
    assert model.info.limits.max_inputs_per_request == 4
    result = model.embed_with_report([f"sentence {i}" for i in range(7)])
    assert result.vectors.shape == (7, 384) and result.report.requests == 3


def test_engine_batches_by_the_embedding_batch_size(server: LoopbackServer) -> None:
    model = from_llamaindex(llamaindex_openai(server, embed_batch_size=10))
    texts = [f"document {i}" for i in range(25)]
    result = model.embed_with_report(texts)
    assert result.report.requests == math.ceil(len(texts) / 10)
    assert model.info.dimension == 1536  # learned from the first answer


def test_cache_hits_from_the_first_job_on(tmp_path: Path, server: LoopbackServer) -> None:
    texts = ["alpha beta", "gamma delta"]
    first = from_llamaindex(llamaindex_openai(server), cache=tmp_path / "cache.db")
    first.embed(["an earlier job"])  # the dimension is known from here on
    first.embed(texts)
    second = from_llamaindex(llamaindex_openai(server), cache=tmp_path / "cache.db")
    report = second.embed_with_report(texts).report
    assert report.cached == len(texts) and report.requests == 0


def test_configuration_is_part_of_the_fingerprint_but_secrets_are_not(
    server: LoopbackServer,
) -> None:
    small = from_llamaindex(llamaindex_openai(server, model="text-embedding-3-small"))
    large = from_llamaindex(llamaindex_openai(server, model="text-embedding-3-large"))
    other_key = from_llamaindex(
        llamaindex_openai(server, model="text-embedding-3-small", api_key="sk-another-key")
    )
    assert small.info.fingerprint() != large.info.fingerprint()
    assert small.info.fingerprint() == other_key.info.fingerprint()


def test_bad_input_names_what_llamaindex_expects() -> None:
    with pytest.raises(TypeError, match="BaseEmbedding"):
        from_llamaindex(object())  # type: ignore[arg-type]
    with pytest.raises(embedify.ConfigurationError, match="cannot import"):
        embedify.get_model("llamaindex:no_such_module.Embedding")
    with pytest.raises(embedify.ConfigurationError, match="BaseEmbedding subclass"):
        embedify.get_model("llamaindex:json.JSONDecoder")
    with pytest.raises(embedify.ConfigurationError, match="Name a LlamaIndex embedding class"):
        embedify.get_model("llamaindex")


def test_import_embedify_does_not_import_llamaindex() -> None:
    code = (
        "import sys, embedify; embedify.get_model('fake').embed('x');"
        "from embedify.registry import registry;"
        "assert 'llamaindex' in registry.providers, registry.providers;"
        "assert not [m for m in sys.modules if m.startswith('llama_index')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def dependency_closure(distribution: str) -> set[str]:
    """Every distribution installing ``distribution`` pulls in (extras left out)."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_installing_it_does_not_install_the_other_integration() -> None:
    closure = dependency_closure("embedify-llamaindex")
    assert "llama-index-core" in closure  # the walk follows requirements
    assert not [name for name in closure if "langchain" in name]
