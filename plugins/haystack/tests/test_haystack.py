"""The embedders in real Haystack pipelines: InMemoryDocumentStore, DocumentWriter,
InMemoryEmbeddingRetriever, serialised to YAML and loaded back."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
from embedify_haystack import EmbedifyDocumentEmbedder, EmbedifyTextEmbedder
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import Secret

import embedify

FACTS = [
    "The Eiffel Tower is in Paris and was finished in 1889.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The Great Barrier Reef lies off the coast of Queensland, Australia.",
    "Mount Everest is the highest mountain above sea level.",
    "Python was created by Guido van Rossum and first released in 1991.",
    "The heart pumps blood through the body's arteries and veins.",
    "Bees make honey from the nectar of flowers.",
    "The Amazon is the largest rainforest on Earth.",
    "Saturn has the most spectacular rings of any planet.",
    "Espresso is made by forcing hot water through finely ground coffee.",
]


def test_yaml_round_tripped_pipelines_index_and_retrieve_the_same() -> None:
    store = InMemoryDocumentStore(index=f"facts-{uuid.uuid4()}")
    indexing = Pipeline()
    indexing.add_component("embedder", EmbedifyDocumentEmbedder("local"))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    querying = Pipeline()
    querying.add_component("embedder", EmbedifyTextEmbedder("local"))
    querying.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=3))
    querying.connect("embedder.embedding", "retriever.query_embedding")

    documents = [Document(content=fact) for fact in FACTS]
    # Haystack loads classes only from modules the caller trusts.
    trusted = ["embedify_haystack"]
    Pipeline.loads(indexing.dumps(), allowed_modules=trusted).run(
        {"embedder": {"documents": documents}}
    )
    stored = {document.id: document.embedding for document in store.filter_documents()}
    direct = indexing.get_component("embedder").run(documents=documents)["documents"]
    assert len(stored) == len(FACTS)
    for document in direct:
        np.testing.assert_allclose(stored[document.id], document.embedding, atol=1e-6)

    question = {"embedder": {"text": "Which insect produces honey?"}}
    before = querying.run(question)["retriever"]["documents"]
    loaded = Pipeline.loads(querying.dumps(), allowed_modules=trusted)
    after = loaded.run(question)["retriever"]["documents"]
    assert before[0].content == FACTS[6]
    assert [d.id for d in after] == [d.id for d in before]
    assert [d.score for d in after] == pytest.approx([d.score for d in before], abs=1e-6)


def test_documents_and_queries_use_their_roles() -> None:
    model = embedify.get_model("fake:16")
    text = "The cat sat on the mat."
    (document,) = EmbedifyDocumentEmbedder("fake:16").run(documents=[Document(content=text)])[
        "documents"
    ]
    query = EmbedifyTextEmbedder("fake:16").run(text=text)["embedding"]
    np.testing.assert_allclose(document.embedding, model.embed_documents([text])[0], atol=1e-6)
    np.testing.assert_allclose(query, model.embed_query(text), atol=1e-6)
    assert float(np.dot(query, document.embedding)) < 0.99  # the roles differ for this model


def test_meta_fields_prefix_and_suffix_are_embedded_like_haystacks_embedders() -> None:
    embedder = EmbedifyDocumentEmbedder(
        "fake:16",
        prefix="passage: ",
        suffix=" (end)",
        meta_fields_to_embed=["title", "year", "missing"],
        embedding_separator=" | ",
    )
    source = Document(content="Bees make honey.", meta={"title": "Bees", "year": 2024})
    (document,) = embedder.run(documents=[source])["documents"]
    expected = embedify.get_model("fake:16").embed_documents(
        ["passage: Bees | 2024 | Bees make honey. (end)"]
    )[0]
    np.testing.assert_allclose(document.embedding, expected, atol=1e-6)
    assert document.id == source.id and document.meta == source.meta
    assert source.embedding is None  # the input document is left as it was

    text = EmbedifyTextEmbedder("fake:16", prefix="query: ", suffix="?").run(text="bees")
    expected_query = embedify.get_model("fake:16").embed_query("query: bees?")
    np.testing.assert_allclose(text["embedding"], expected_query, atol=1e-6)


def test_run_async_gives_what_run_gives() -> None:
    documents = [Document(content=fact) for fact in FACTS[:3]]
    embedder = EmbedifyDocumentEmbedder("fake:16")
    sync = embedder.run(documents=documents)["documents"]
    concurrent = asyncio.run(embedder.run_async(documents=documents))["documents"]
    assert [d.embedding for d in concurrent] == [d.embedding for d in sync]
    text_embedder = EmbedifyTextEmbedder("fake:16")
    asynced = asyncio.run(text_embedder.run_async(text="bees"))
    assert asynced["embedding"] == text_embedder.run(text="bees")["embedding"]


class CountingModel(embedify.EmbeddingModel):
    """The fake's vectors with a small request limit; records each request and each job."""

    provider = "counting-haystack"
    capabilities = embedify.Capabilities(
        dimension=8, limits=embedify.Limits(max_inputs_per_request=64)
    )
    options_class = embedify.RemoteOptions
    requests: ClassVar[list[int]] = []
    jobs: ClassVar[int] = 0

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        type(self).requests.append(len(texts))
        return embedify.get_model("fake:8").embed_batch(texts, role)

    async def aembed_with_report(
        self, texts: Sequence[str], role: embedify.Role = "document"
    ) -> embedify.EmbeddingResult:
        type(self).jobs += 1
        return await super().aembed_with_report(texts, role)


embedify.register_model("counting-haystack", CountingModel, default_model="v1")


def test_a_run_is_one_engine_job_planned_by_the_model_limits() -> None:
    documents = [Document(content=f"document number {i}") for i in range(1000)]
    result = EmbedifyDocumentEmbedder("counting-haystack").run(documents=documents)
    assert CountingModel.jobs == 1
    assert sum(CountingModel.requests) == 1000 and max(CountingModel.requests) == 64
    assert all(len(d.embedding) == 8 for d in result["documents"])
    assert result["meta"]["model"] == "counting-haystack:v1"


def test_serialisation_keeps_options_and_secrets_as_haystack_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COUNTING_KEY", "sk-secret-123")
    embedder = EmbedifyTextEmbedder(
        "counting-haystack", prefix="q: ", batch_size=7, api_key=Secret.from_env_var("COUNTING_KEY")
    )
    data = embedder.to_dict()
    assert data["init_parameters"]["api_key"]["env_vars"] == ["COUNTING_KEY"]
    assert "sk-secret" not in str(data)
    loaded = EmbedifyTextEmbedder.from_dict(data)
    assert loaded.to_dict() == data
    loaded.warm_up()
    assert loaded._model is not None
    assert loaded._model.options.batch_size == 7
    assert loaded._model.options.api_key.get_secret_value() == "sk-secret-123"

    with pytest.raises(TypeError, match=r"Secret.from_env_var"):
        EmbedifyTextEmbedder("counting-haystack", api_key="sk-plain")
    document_embedder = EmbedifyDocumentEmbedder("fake:8", meta_fields_to_embed=["title"])
    copy = EmbedifyDocumentEmbedder.from_dict(document_embedder.to_dict())
    assert copy.meta_fields_to_embed == ["title"] and copy.embedding_separator == "\n"


def test_bad_input_names_haystacks_expectation() -> None:
    with pytest.raises(TypeError, match=r"expects a string.*use EmbedifyDocumentEmbedder"):
        EmbedifyTextEmbedder("fake:8").run(text=[Document(content="x")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"expects a list of Documents.*use EmbedifyTextEmbedder"):
        EmbedifyDocumentEmbedder("fake:8").run(documents="some text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model name"):
        EmbedifyTextEmbedder(embedify.get_model("fake:8"))  # type: ignore[arg-type]


def test_installs_and_imports_nothing_of_other_frameworks() -> None:
    requires = " ".join(importlib.metadata.requires("embedify-haystack") or [])
    assert not any(name in requires for name in ("chromadb", "langchain", "llama"))
    check = "import sys, embedify; embedify.get_model('fake'); print('haystack' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
