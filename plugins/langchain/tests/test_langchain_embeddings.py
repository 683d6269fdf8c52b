"""EmbedifyEmbeddings in LangChain: a real vector store, roles, one engine call per list,
native async, and the errors LangChain users meet."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from embedify_langchain import EmbedifyEmbeddings
from langchain_core.vectorstores import InMemoryVectorStore
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import embedify

TEXTS = [
    "Cats sleep for most of the day and hunt small rodents at night.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "Sourdough bread rises slowly because wild yeast ferments the dough.",
    "Heavy rain fell all week and the river flooded the lower streets.",
    "Jupiter is the largest planet in the solar system, a gas giant.",
]
QUESTIONS = ["Which pets chase mice?", "What happened to the economy?", "How is bread made?"]


def search(embeddings: object, question: str) -> list[str]:
    store = InMemoryVectorStore(embeddings)  # type: ignore[arg-type]
    store.add_texts(TEXTS)
    return [document.page_content for document in store.similarity_search(question, k=2)]


def test_vector_store_finds_what_langchain_huggingface_finds(minilm_folder: str) -> None:
    from langchain_huggingface import HuggingFaceEmbeddings

    ours = EmbedifyEmbeddings("local")
    theirs = HuggingFaceEmbeddings(model_name=minilm_folder)
    for question in QUESTIONS:
        assert search(ours, question) == search(theirs, question)
    assert search(ours, QUESTIONS[0])[0] == TEXTS[0]
    assert search(ours, QUESTIONS[1])[0] == TEXTS[1]
    query = "It is raining cats and dogs here!"
    a, b = np.asarray(ours.embed_query(query)), np.asarray(theirs.embed_query(query))
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.999


def test_documents_and_queries_use_their_roles() -> None:
    embeddings = EmbedifyEmbeddings("fake")
    text = "where is the cat"
    assert np.allclose(embeddings.embed_query(text), embeddings.model.embed_query(text))
    assert np.allclose(embeddings.embed_documents([text])[0], embeddings.model.embed(text))
    assert not np.allclose(embeddings.embed_query(text), embeddings.embed_documents([text])[0])


def test_a_list_of_documents_is_one_engine_call() -> None:
    embeddings = EmbedifyEmbeddings("fake", batch_size=100)
    vectors = embeddings.embed_documents([f"document {i}" for i in range(1000)])
    report = embeddings.last_report
    assert len(vectors) == 1000 and report is not None and len(report.items) == 1000
    assert report.requests == math.ceil(1000 / 100)


class _SyncPathForbidden(EmbedifyEmbeddings):
    def _embed(self, texts, role):  # type: ignore[no-untyped-def]
        raise AssertionError("the async API must not take the synchronous path")


def test_async_methods_are_native_and_agree_with_sync() -> None:
    reference, embeddings = EmbedifyEmbeddings("fake"), _SyncPathForbidden("fake")

    async def run() -> tuple[list[list[float]], list[float]]:
        return await embeddings.aembed_documents(TEXTS), await embeddings.aembed_query("cats")

    documents, query = asyncio.run(run())
    assert np.allclose(documents, reference.embed_documents(TEXTS), atol=1e-6)
    assert np.allclose(query, reference.embed_query("cats"), atol=1e-6)


def test_engine_cache_is_reachable(tmp_path: Path) -> None:
    EmbedifyEmbeddings("fake", cache=tmp_path / "cache.db").embed_documents(TEXTS)
    again = EmbedifyEmbeddings("fake", cache=tmp_path / "cache.db")
    again.embed_documents(TEXTS)
    assert again.last_report is not None and again.last_report.cached == len(TEXTS)


def test_a_given_model_instance_is_used_as_it_is() -> None:
    model = embedify.get_model("fake:16")
    embeddings = EmbedifyEmbeddings(model)
    assert embeddings.model is model and len(embeddings.embed_query("hello")) == 16


def test_bad_input_names_what_langchain_expects() -> None:
    embeddings = EmbedifyEmbeddings("fake")
    with pytest.raises(TypeError, match="list of strings"):
        embeddings.embed_documents("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="one string"):
        embeddings.embed_query(["a", "list"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="embedify model name"):
        EmbedifyEmbeddings(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="get_model"):
        EmbedifyEmbeddings(embedify.get_model("fake"), cache=True)
    with pytest.raises(embedify.ConfigurationError, match="Invalid options"):
        EmbedifyEmbeddings("fake", batch_size=0)


def test_import_embedify_does_not_import_langchain() -> None:
    code = (
        "import sys, embedify; embedify.get_model('fake').embed('x');"
        "from embedify.registry import registry;"
        "assert 'langchain' in registry.providers, registry.providers;"
        "assert not [m for m in sys.modules if m.startswith('langchain')]"
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
    closure = dependency_closure("embedify-langchain")
    assert "langchain-core" in closure  # the walk follows requirements
    assert not [name for name in closure if "llama-index" in name]
