"""Any LlamaIndex embedding as an embedify model, so it gets the engine's cache, report, roles
and batching: ``from_llamaindex(obj)`` or ``get_model("llamaindex:<module>.<Class>", ...)``."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

import embedify
from embedify import ConfigurationError, EmbeddingModel, Limits, ModelOptions
from embedify.model import Role, Vectors

_SECRET_WORDS = ("key", "token", "secret", "password")


class LlamaIndexEmbeddingModel(EmbeddingModel):
    """A LlamaIndex ``BaseEmbedding`` behind the embedify engine.

    Documents go through ``get_text_embedding_batch`` in requests of at most the object's
    ``embed_batch_size`` (so LlamaIndex makes one call per request), queries through
    ``get_query_embedding``. The dimension is learned from the first answer. The engine runs
    requests in worker threads, one at a time unless ``max_concurrency`` says more.

    By name, keywords that are embedify options (``batch_size``, ``cache``, ``max_concurrency``...)
    configure the engine and the rest build the class; to give the class an argument with one
    of those names, build it yourself and call ``from_llamaindex``.
    """

    provider = "llamaindex"
    role_mapping = {"document": "get_text_embedding_batch", "query": "get_query_embedding"}
    default_max_concurrency = 1

    def __init__(self, model_id: str | None = None, **kwargs: Any) -> None:
        options = {key: kwargs.pop(key) for key in list(kwargs) if key in ModelOptions.model_fields}
        if not model_id:
            raise ConfigurationError(
                "Name a LlamaIndex embedding class: 'llamaindex:<module>.<Class>', e.g. "
                "'llamaindex:llama_index.embeddings.huggingface.HuggingFaceEmbedding'."
            )
        super().__init__(model_id, **options)
        self._adopt(_build(model_id, kwargs))

    @classmethod
    def wrapping(cls, embedding: BaseEmbedding, **options: Any) -> LlamaIndexEmbeddingModel:
        """The model for an existing LlamaIndex embedding object."""
        if not isinstance(embedding, BaseEmbedding):
            raise TypeError(
                "from_llamaindex expects a LlamaIndex embedding, an instance of "
                "llama_index.core.base.embeddings.base.BaseEmbedding (e.g. "
                f"HuggingFaceEmbedding(...)); got {type(embedding).__name__}."
            )
        model = cls.__new__(cls)
        EmbeddingModel.__init__(model, _class_path(type(embedding)), **options)
        model._adopt(embedding)
        return model

    def _adopt(self, embedding: BaseEmbedding) -> None:
        self.embedding = embedding
        self.limits = Limits(max_inputs_per_request=embedding.embed_batch_size)
        self.revision = _config_digest(embedding)

    async def prepare(self) -> None:
        """With a cache, learn the dimension before the first job: it is part of the cache key."""
        if self.options.cache and self.dimension is None:
            await asyncio.to_thread(self.embed_batch, ["dimension probe"], "document")

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        try:
            if role == "query":
                rows = [self.embedding.get_query_embedding(text) for text in texts]
            else:
                rows = self.embedding.get_text_embedding_batch(texts)
        except Exception as error:
            translated = _translated(error, self)
            if translated is error:
                raise
            raise translated from error
        vectors = np.asarray(rows, dtype=np.float32)
        if self.dimension is None and vectors.ndim == 2:
            self.dimension = vectors.shape[1]
        return vectors


def from_llamaindex(embedding: BaseEmbedding, **options: Any) -> LlamaIndexEmbeddingModel:
    """Wrap a LlamaIndex embedding object as an embedify model; keywords are embedify options."""
    return LlamaIndexEmbeddingModel.wrapping(embedding, **options)


def _build(path: str, kwargs: dict[str, Any]) -> BaseEmbedding:
    module_name, _, class_name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except ImportError as error:
        raise ConfigurationError(
            f"llamaindex:{path}: cannot import {module_name!r} ({error}); install the LlamaIndex "
            "package that provides it, e.g. pip install llama-index-embeddings-huggingface."
        ) from None
    except AttributeError:
        found = None
    if not (isinstance(found, type) and issubclass(found, BaseEmbedding)):
        raise ConfigurationError(
            f"llamaindex:{path} does not name a LlamaIndex embedding class; expected "
            "'<module>.<Class>' of a llama_index BaseEmbedding subclass, e.g. "
            "'llama_index.embeddings.huggingface.HuggingFaceEmbedding'."
        )
    return found(**kwargs)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _config_digest(embedding: BaseEmbedding) -> str:
    """Identifies the object's configuration in the cache key; secret-looking fields are left
    out so no key ends up in a fingerprint."""
    config = {
        name: value
        for name, value in embedding.to_dict().items()
        if not any(word in name.lower() for word in _SECRET_WORDS)
    }
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _translated(error: Exception, model: EmbeddingModel) -> Exception:
    """The framework's error as an embedify error when it carries an HTTP status or says it
    timed out, so the engine can retry, wait or stop; anything else is raised as it is."""
    response = getattr(error, "response", None)
    status = getattr(error, "status_code", None) or getattr(response, "status_code", None)
    what = f"{type(error).__name__} from {model!r}"
    if isinstance(status, int):
        headers = getattr(response, "headers", None) or {}
        return embedify.error_for_status(
            status,
            f"{what} (HTTP {status})",
            retry_after=embedify.retry_after_from_headers(headers),
        )
    name = type(error).__name__
    if (
        isinstance(error, TimeoutError | ConnectionError)
        or "Timeout" in name
        or "Connection" in name
    ):
        return embedify.TransientError(what)
    return error
