"""Any LangChain embedding as an embedify model, so it gets the engine's cache, report, roles
and batching: ``from_langchain(obj)`` or ``get_model("langchain:<module>.<Class>", ...)``."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from embedify.protocol import Capabilities, Role
from embedify.wrapping import WrappedEmbeddingModel


class LangChainEmbeddingModel(WrappedEmbeddingModel[Embeddings]):
    """A LangChain ``Embeddings`` behind the embedify engine.

    Documents go through ``embed_documents`` (one call per engine request, sized by
    ``batch_size``), queries through ``embed_query`` one at a time. Building by name, the
    fingerprint, the dimension and errors work as :class:`embedify.wrapping.WrappedEmbeddingModel`
    describes.
    """

    provider = "langchain"
    capabilities = Capabilities(
        roles={"document": "embed_documents", "query": "embed_query"}, max_concurrency=1
    )
    wrapped_class = Embeddings
    wrapped_class_name = "langchain_core.embeddings.Embeddings"
    wrapped_kind = "LangChain embeddings"
    example_class = "langchain_huggingface.HuggingFaceEmbeddings"
    example_package = "langchain-huggingface"

    @property
    def embeddings(self) -> Embeddings:
        """The LangChain object this model wraps."""
        return self.wrapped

    def embed_wrapped(self, texts: list[str], role: Role) -> list[list[float]]:
        if role == "query":
            return [self.wrapped.embed_query(text) for text in texts]
        return self.wrapped.embed_documents(texts)


def from_langchain(embeddings: Embeddings, **options: Any) -> LangChainEmbeddingModel:
    """Wrap a LangChain embeddings object as an embedify model; keywords are embedify options."""
    return LangChainEmbeddingModel.wrapping(embeddings, **options)
