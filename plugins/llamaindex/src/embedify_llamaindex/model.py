"""Any LlamaIndex embedding as an embedify model, so it gets the engine's cache, report, roles
and batching: ``from_llamaindex(obj)`` or ``get_model("llamaindex:<module>.<Class>", ...)``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding

from embedify.protocol import Capabilities, Limits, Role
from embedify.wrapping import WrappedEmbeddingModel


class LlamaIndexEmbeddingModel(WrappedEmbeddingModel[BaseEmbedding]):
    """A LlamaIndex ``BaseEmbedding`` behind the embedify engine.

    Documents go through ``get_text_embedding_batch`` in requests of at most the object's
    ``embed_batch_size`` (so LlamaIndex makes one call per request), queries through
    ``get_query_embedding``. Building by name, the fingerprint, the dimension and errors work as
    :class:`embedify.wrapping.WrappedEmbeddingModel` describes.
    """

    provider = "llamaindex"
    capabilities = Capabilities(
        roles={"document": "get_text_embedding_batch", "query": "get_query_embedding"},
        max_concurrency=1,
    )
    wrapped_class = BaseEmbedding
    wrapped_class_name = "llama_index.core.base.embeddings.base.BaseEmbedding"
    wrapped_kind = "LlamaIndex embedding"
    example_class = "llama_index.embeddings.huggingface.HuggingFaceEmbedding"
    example_package = "llama-index-embeddings-huggingface"

    @property
    def embedding(self) -> BaseEmbedding:
        """The LlamaIndex object this model wraps."""
        return self.wrapped

    def configure(self) -> Capabilities:
        limits = Limits(max_inputs_per_request=self.wrapped.embed_batch_size)
        return replace(self.capabilities, limits=limits)

    def wrapped_settings(self) -> dict[str, Any]:
        """LlamaIndex's own serialisation, the one a persisted index reloads from."""
        return self.wrapped.to_dict()

    def embed_wrapped(self, texts: list[str], role: Role) -> list[list[float]]:
        if role == "query":
            return [self.wrapped.get_query_embedding(text) for text in texts]
        return self.wrapped.get_text_embedding_batch(texts)


def from_llamaindex(embedding: BaseEmbedding, **options: Any) -> LlamaIndexEmbeddingModel:
    """Wrap a LlamaIndex embedding object as an embedify model; keywords are embedify options."""
    return LlamaIndexEmbeddingModel.wrapping(embedding, **options)
