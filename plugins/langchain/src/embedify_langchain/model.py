"""Any LangChain embedding as an embedify model, so it gets the engine's cache, report, roles
and batching: ``from_langchain(obj)`` or ``get_model("langchain:<module>.<Class>", ...)``."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

import embedify
from embedify import ConfigurationError, EmbeddingModel, ModelOptions
from embedify.model import Role, Vectors

_SECRET_WORDS = ("key", "token", "secret", "password")


class LangChainEmbeddingModel(EmbeddingModel):
    """A LangChain ``Embeddings`` behind the embedify engine.

    Documents go through ``embed_documents`` (one call per engine request, sized by
    ``batch_size``), queries through ``embed_query`` one at a time. The dimension is learned
    from the first answer. The engine runs requests in worker threads, one at a time unless
    ``max_concurrency`` says more.

    By name, keywords that are embedify options (``batch_size``, ``cache``, ``max_concurrency``...)
    configure the engine and the rest build the class; to give the class an argument with one
    of those names, build it yourself and call ``from_langchain``.
    """

    provider = "langchain"
    role_mapping = {"document": "embed_documents", "query": "embed_query"}
    default_max_concurrency = 1

    def __init__(self, model_id: str | None = None, **kwargs: Any) -> None:
        options = {key: kwargs.pop(key) for key in list(kwargs) if key in ModelOptions.model_fields}
        if not model_id:
            raise ConfigurationError(
                "Name a LangChain embeddings class: 'langchain:<module>.<Class>', e.g. "
                "'langchain:langchain_huggingface.HuggingFaceEmbeddings'."
            )
        super().__init__(model_id, **options)
        self._adopt(_build(model_id, kwargs))

    @classmethod
    def wrapping(cls, embeddings: Embeddings, **options: Any) -> LangChainEmbeddingModel:
        """The model for an existing LangChain embeddings object."""
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                "from_langchain expects LangChain embeddings, an instance of "
                "langchain_core.embeddings.Embeddings (e.g. HuggingFaceEmbeddings(...)); got "
                f"{type(embeddings).__name__}."
            )
        model = cls.__new__(cls)
        EmbeddingModel.__init__(model, _class_path(type(embeddings)), **options)
        model._adopt(embeddings)
        return model

    def _adopt(self, embeddings: Embeddings) -> None:
        self.embeddings = embeddings
        self.revision = _config_digest(embeddings)

    async def prepare(self) -> None:
        """With a cache, learn the dimension before the first job: it is part of the cache key."""
        if self.options.cache and self.dimension is None:
            await asyncio.to_thread(self.embed_batch, ["dimension probe"], "document")

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        try:
            if role == "query":
                rows = [self.embeddings.embed_query(text) for text in texts]
            else:
                rows = self.embeddings.embed_documents(texts)
        except Exception as error:
            translated = _translated(error, self)
            if translated is error:
                raise
            raise translated from error
        vectors = np.asarray(rows, dtype=np.float32)
        if self.dimension is None and vectors.ndim == 2:
            self.dimension = vectors.shape[1]
        return vectors


def from_langchain(embeddings: Embeddings, **options: Any) -> LangChainEmbeddingModel:
    """Wrap a LangChain embeddings object as an embedify model; keywords are embedify options."""
    return LangChainEmbeddingModel.wrapping(embeddings, **options)


def _build(path: str, kwargs: dict[str, Any]) -> Embeddings:
    module_name, _, class_name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except ImportError as error:
        raise ConfigurationError(
            f"langchain:{path}: cannot import {module_name!r} ({error}); install the LangChain "
            "package that provides it, e.g. pip install langchain-huggingface."
        ) from None
    except AttributeError:
        found = None
    if not (isinstance(found, type) and issubclass(found, Embeddings)):
        raise ConfigurationError(
            f"langchain:{path} does not name a LangChain embeddings class; expected "
            "'<module>.<Class>' of a langchain_core.embeddings.Embeddings subclass, e.g. "
            "'langchain_huggingface.HuggingFaceEmbeddings'."
        )
    return found(**kwargs)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _config_digest(embeddings: Embeddings) -> str:
    """Identifies the object's configuration in the cache key: its plain settings, without
    secret-looking fields (no key in a fingerprint) or live objects (clients, models)."""
    fields = embeddings.model_dump() if hasattr(embeddings, "model_dump") else vars(embeddings)
    text = json.dumps(_plain(fields), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_DROPPED = object()


def _plain(value: Any) -> Any:
    """JSON-ready settings: plain values kept, secret-looking keys and live objects dropped."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            plain = _plain(item)
            if plain is not _DROPPED and not any(w in str(key).lower() for w in _SECRET_WORDS):
                kept[str(key)] = plain
        return kept
    if isinstance(value, list | tuple):
        return [plain for plain in map(_plain, value) if plain is not _DROPPED]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _DROPPED


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
    name = type(error).__name__  # httpx, openai, requests... all name their network errors so
    if isinstance(error, TimeoutError | ConnectionError) or "Timeout" in name or "Connect" in name:
        return embedify.TransientError(what)
    return error
