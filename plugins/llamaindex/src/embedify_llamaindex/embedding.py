"""``EmbedifyEmbedding``: a LlamaIndex embedding whose work is done by the embedify engine.

LlamaIndex's own batch path cuts inputs into fixed batches of ``embed_batch_size`` and sends
them one at a time. Here a whole batch goes to the engine in one call, which plans requests by
the model's limits, runs them concurrently, retries, caches and reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from pydantic import SecretStr

import embedify
from embedify import EmbeddingModel
from embedify.engine import Report
from embedify.protocol import Role

dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]

#: Options never written by ``to_dict``: a reloaded embedding reads them from the environment.
SECRET_OPTIONS = frozenset({"api_key"})
#: LlamaIndex's own fields, passed to ``BaseEmbedding``; every other keyword is an embedify option.
_LLAMAINDEX_FIELDS = frozenset(
    {"callback_manager", "num_workers", "embeddings_cache", "rate_limiter"}
)
_MOST_LLAMAINDEX_ALLOWS = 2048  # BaseEmbedding.embed_batch_size's upper bound


class EmbedifyEmbedding(BaseEmbedding):
    """Any embedify model as a LlamaIndex embedding::

        Settings.embed_model = EmbedifyEmbedding("local")
        EmbedifyEmbedding("openai:text-embedding-3-small", embed_batch_size=256, cache=True)

    Queries are embedded with the ``query`` role and node texts with the ``document`` role.
    ``embed_batch_size`` is the engine's ``batch_size``; left out, it is the model's own most
    inputs per request. Other keywords are the model's options (``embedify.get_model``).
    Serialises with ``to_dict``/``from_dict`` (secrets such as ``api_key`` are left out).
    """

    model_name: str = Field(default="local", description="The embedify model name.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="embedify model options, secrets left out."
    )
    _model: EmbeddingModel = PrivateAttr()
    _last_report: Report | None = PrivateAttr(default=None)

    def __init__(
        self,
        model: str | EmbeddingModel | None = None,
        embed_batch_size: int | None = None,
        *,
        model_name: str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        llamaindex_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in _LLAMAINDEX_FIELDS}
        engine_options = {**(options or {}), **kwargs}
        if model is not None and model_name is not None:
            raise TypeError("EmbedifyEmbedding takes model or model_name, not both.")
        chosen = model if model is not None else (model_name or "local")
        if isinstance(chosen, EmbeddingModel):
            if engine_options:
                raise TypeError(
                    "EmbedifyEmbedding(model_instance) takes no model options: pass them to "
                    f"embedify.get_model(...) instead (got {', '.join(sorted(engine_options))})."
                )
            built = chosen
            name = f"{chosen.provider}:{chosen.model_id}"
            engine_options = chosen.options.model_dump(exclude_unset=True)
        elif isinstance(chosen, str):
            name = chosen
            # A reloaded embedding (from_dict) brings its options, which hold batch_size if the
            # user set it; its embed_batch_size is then only the value derived below.
            if embed_batch_size is not None and options is None:
                engine_options["batch_size"] = embed_batch_size
            built = embedify.get_model(name, **engine_options)
        else:
            raise TypeError(
                "EmbedifyEmbedding expects an embedify model name such as 'local' or "
                f"'openai:text-embedding-3-small', or an embedify EmbeddingModel; got {chosen!r}."
            )
        limit = built.options.batch_size or built.info.limits.max_inputs_per_request
        super().__init__(
            model_name=name,
            embed_batch_size=min(limit or _MOST_LLAMAINDEX_ALLOWS, _MOST_LLAMAINDEX_ALLOWS),
            options=_serialisable(engine_options),
            **llamaindex_fields,
        )
        self._model = built

    @classmethod
    def class_name(cls) -> str:
        return "EmbedifyEmbedding"

    @property
    def model(self) -> EmbeddingModel:
        """The embedify model: its ``info``, ``embed_with_report`` and the rest."""
        return self._model

    @property
    def last_report(self) -> Report | None:
        """The engine's report of the most recent call (cached, embedded, requests, retries)."""
        return self._last_report

    # -- one engine call per LlamaIndex call ------------------------------------------------

    def _embed(self, texts: Sequence[str], role: Role) -> list[Embedding]:
        result = self._model.embed_with_report(_checked(texts), role)
        self._last_report = result.report
        vectors: list[Embedding] = result.vectors.tolist()
        return vectors

    async def _aembed(self, texts: Sequence[str], role: Role) -> list[Embedding]:
        result = await self._model.aembed_with_report(_checked(texts), role)
        self._last_report = result.report
        vectors: list[Embedding] = result.vectors.tolist()
        return vectors

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([query], "query"))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], "document")[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([text], "document"))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, "document")

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(texts, "document")

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """All ``texts`` in one engine call (LlamaIndex would send batches one at a time)."""
        texts = _checked(texts)
        with self._events(texts) as event:
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            if self.embeddings_cache is not None:
                embeddings = self._get_text_embeddings_cached(texts)
            else:
                embeddings = self._get_text_embeddings(texts)
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings})
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=embeddings))
        return embeddings

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async ``get_text_embedding_batch``: one engine call, concurrency is the engine's."""
        texts = _checked(texts)
        with self._events(texts) as event:
            if self.rate_limiter is not None:
                await self.rate_limiter.async_acquire()
            if self.embeddings_cache is not None:
                embeddings = await self._aget_text_embeddings_cached(texts)
            else:
                embeddings = await self._aget_text_embeddings(texts)
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings})
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=embeddings))
        return embeddings

    def _events(self, texts: list[str]) -> Any:
        """The instrumentation and callback events LlamaIndex emits around an embedding call."""
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        return self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        )


def _checked(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(
            "LlamaIndex's batch methods take a list of strings, not one string; wrap it in a "
            "list, or call get_text_embedding(text)."
        )
    return list(texts)


def _serialisable(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON-ready data for ``to_dict``, secrets left out."""
    kept: dict[str, Any] = {}
    for key, value in options.items():
        if key in SECRET_OPTIONS or isinstance(value, SecretStr):
            continue
        kept[key] = str(value) if isinstance(value, Path) else value
    return kept
