"""EmbedifyEmbedding inside real LlamaIndex flows (the seed page's), against LlamaIndex's own
HuggingFace embedding on the same weights."""

from __future__ import annotations

import asyncio
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from embedify_llamaindex import EmbedifyEmbedding
from embedify_openai.testing import API_KEY, FakeOpenAI
from llama_index.core import (
    Settings,
    SimpleDirectoryReader,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)
from llama_index.core.schema import TextNode

import embedify
from embedify.testing import LoopbackServer

QUESTIONS = [
    "Which pets chase mice?",
    "What happened to the economy?",
    "How is bread made?",
    "Tell me about the weather and floods.",
]


def retrieved_texts(index: VectorStoreIndex, question: str) -> list[str]:
    return [
        hit.node.get_content() for hit in index.as_retriever(similarity_top_k=3).retrieve(question)
    ]


def cosine(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_seed_flow_retrieves_the_same_nodes_as_llamaindex_huggingface(
    data_folder: Path, minilm_folder: str
) -> None:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    results = {}
    for name, embed_model in [
        ("embedify", EmbedifyEmbedding("local")),
        ("llamaindex", HuggingFaceEmbedding(model_name=minilm_folder)),
    ]:
        Settings.embed_model = embed_model
        documents = SimpleDirectoryReader(str(data_folder)).load_data()
        index = VectorStoreIndex.from_documents(documents)
        results[name] = [retrieved_texts(index, question) for question in QUESTIONS]
    assert results["embedify"] == results["llamaindex"]
    assert "Cats sleep" in results["embedify"][0][0]
    assert "Stock markets" in results["embedify"][1][0]


def test_standalone_text_embedding_matches_llamaindex_huggingface(minilm_folder: str) -> None:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    text = "It is raining cats and dogs here!"
    embed_model = EmbedifyEmbedding("local")
    ours = embed_model.get_text_embedding(text)
    theirs = HuggingFaceEmbedding(model_name=minilm_folder).get_text_embedding(text)
    assert len(ours) == 384 and isinstance(ours[0], float)
    assert cosine(ours, theirs) > 0.999
    # IngestionPipeline(num_workers=...) pickles its transformations into worker processes.
    unpickled = pickle.loads(pickle.dumps(embed_model))
    assert np.allclose(unpickled.get_text_embedding(text), ours, atol=1e-6)


def test_a_large_batch_is_one_engine_call_planned_by_the_model() -> None:
    embed_model = EmbedifyEmbedding("fake")
    texts = [f"node number {i}" for i in range(1000)]
    vectors = embed_model.get_text_embedding_batch(texts)
    report = embed_model.last_report
    assert report is not None and len(report.items) == len(texts)  # not batches of 10
    assert report.requests == math.ceil(len(texts) / 256)  # the fake's max inputs per request
    assert np.allclose(vectors, embed_model.model.embed(texts, "document"), atol=1e-6)


def test_indexing_goes_through_one_engine_call() -> None:
    Settings.embed_model = embed_model = EmbedifyEmbedding("fake")
    nodes = [TextNode(text=f"node {i} about topic {i % 7}") for i in range(300)]
    VectorStoreIndex(nodes)
    assert embed_model.last_report is not None and len(embed_model.last_report.items) == 300


def test_embed_batch_size_is_the_engine_batch_size() -> None:
    embed_model = EmbedifyEmbedding("fake", embed_batch_size=7)
    assert embed_model.model.options.batch_size == 7 and embed_model.embed_batch_size == 7
    embed_model.get_text_embedding_batch([f"text {i}" for i in range(20)])
    assert embed_model.last_report is not None and embed_model.last_report.requests == 3


def test_queries_and_texts_use_their_roles() -> None:
    embed_model = EmbedifyEmbedding("fake")
    model = embed_model.model
    text = "where is the cat"
    query = embed_model.get_query_embedding(text)
    document = embed_model.get_text_embedding(text)
    assert np.allclose(query, model.embed_query(text), atol=1e-6)
    assert np.allclose(document, model.embed(text, "document"), atol=1e-6)
    assert not np.allclose(query, document, atol=1e-3)


class _SyncPathForbidden(EmbedifyEmbedding):
    def _embed(self, texts, role):  # type: ignore[no-untyped-def]
        raise AssertionError("the async API must not take the synchronous path")


def test_async_methods_are_native_and_agree_with_sync() -> None:
    reference = EmbedifyEmbedding("fake")
    embed_model = _SyncPathForbidden("fake")
    texts = ["first text", "second text", "third text"]

    async def run() -> tuple[list[list[float]], list[float], list[float]]:
        return (
            await embed_model.aget_text_embedding_batch(texts),
            await embed_model.aget_query_embedding("a question"),
            await embed_model.aget_text_embedding("first text"),
        )

    batch, query, single = asyncio.run(run())
    assert np.allclose(batch, reference.get_text_embedding_batch(texts), atol=1e-6)
    assert np.allclose(query, reference.get_query_embedding("a question"), atol=1e-6)
    assert np.allclose(single, batch[0], atol=1e-6)


def test_engine_cache_is_reachable(tmp_path: Path) -> None:
    embed_model = EmbedifyEmbedding("fake", cache=tmp_path / "cache.db")
    texts = [f"cached text {i}" for i in range(10)]
    first = embed_model.get_text_embedding_batch(texts)
    again = EmbedifyEmbedding("fake", cache=tmp_path / "cache.db")
    second = again.get_text_embedding_batch(texts)
    assert again.last_report is not None and again.last_report.cached == len(texts)
    assert again.last_report.requests == 0
    assert np.allclose(first, second)


def test_a_given_model_instance_is_used_as_it_is() -> None:
    model = embedify.get_model("fake:16", batch_size=5)
    embed_model = EmbedifyEmbedding(model)
    assert embed_model.model is model and embed_model.model_name == "fake:16"
    assert embed_model.embed_batch_size == 5
    assert len(embed_model.get_text_embedding("hello")) == 16


def test_persisted_index_reloads_with_the_serialised_embedding(tmp_path: Path) -> None:
    Settings.embed_model = EmbedifyEmbedding("fake:32", embed_batch_size=50)
    nodes = [TextNode(text=text) for text in ["red apples", "green pears", "blue ocean waves"]]
    index = VectorStoreIndex(nodes)
    before = retrieved_texts(index, "ocean")
    index.storage_context.persist(persist_dir=str(tmp_path / "index"))
    saved = Settings.embed_model.to_json()

    data = json.loads(saved)
    assert data["class_name"] == "EmbedifyEmbedding" and data["model_name"] == "fake:32"
    Settings._embed_model = None
    Settings.embed_model = reloaded = EmbedifyEmbedding.from_json(saved)
    assert reloaded.model.options.batch_size == 50 and reloaded.to_dict() == data
    derived = EmbedifyEmbedding("fake:32").to_dict()  # embed_batch_size from the model's limits
    assert EmbedifyEmbedding.from_dict(derived).to_dict() == derived
    storage = StorageContext.from_defaults(persist_dir=str(tmp_path / "index"))
    again = load_index_from_storage(storage)
    assert retrieved_texts(again, "ocean") == before
    assert before[0] == "blue ocean waves"


def test_serialisation_leaves_the_api_key_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with LoopbackServer(FakeOpenAI()) as server:
        embed_model = EmbedifyEmbedding(
            "openai:text-embedding-3-small",
            api_key="sk-secret-do-not-print",
            base_url=f"{server.url}/v1",
        )
        saved = embed_model.to_json()
        assert "sk-secret" not in saved and "sk-secret" not in repr(embed_model)
        reloaded = EmbedifyEmbedding.from_json(saved)  # the key comes from the environment
        assert reloaded.model.options.base_url == f"{server.url}/v1"
        assert len(reloaded.get_text_embedding("hello")) == 1536


def test_bad_input_names_what_llamaindex_expects() -> None:
    embed_model = EmbedifyEmbedding("fake")
    with pytest.raises(TypeError, match="list of strings"):
        embed_model.get_text_embedding_batch("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="embedify model name"):
        EmbedifyEmbedding(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="get_model"):
        EmbedifyEmbedding(embedify.get_model("fake"), cache=True)
    with pytest.raises(embedify.ConfigurationError, match="empty"):
        embed_model.get_text_embedding_batch(["fine", "  "])
