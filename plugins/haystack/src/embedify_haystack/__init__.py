"""Haystack embedders backed by any embedify model.

``EmbedifyDocumentEmbedder`` embeds documents with the model's ``document`` role and
``EmbedifyTextEmbedder`` embeds queries with its ``query`` role, each ``run`` as one engine job
(batched by the model's limits, retried, cached). Both serialise like Haystack's own
embedders, so a pipeline survives ``dumps``/``loads``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import Secret

import embedify
from embedify import EmbeddingModel

if TYPE_CHECKING:
    from embedify import Report

__all__ = ["EmbedifyDocumentEmbedder", "EmbedifyTextEmbedder"]


class _EmbedifyComponent:
    """What both embedders share: the model, built on ``warm_up``, and its options."""

    def __init__(self, model: str, prefix: str, suffix: str, options: dict[str, Any]) -> None:
        if not isinstance(model, str):
            raise TypeError(
                f"{type(self).__name__} takes a model name such as 'local' or 'openai:...', so "
                "the pipeline can be serialised; register a custom model with "
                "embedify.register_model and pass its name."
            )
        if isinstance(options.get("api_key"), str):
            raise TypeError(
                "Pass api_key as a Haystack Secret (Secret.from_env_var('OPENAI_API_KEY') or "
                "Secret.from_token(...)), as Haystack components expect, not a plain string."
            )
        self.model = model
        self.prefix = prefix
        self.suffix = suffix
        self.options = options
        self._model: EmbeddingModel | None = None

    def warm_up(self) -> None:
        """Load the model (Haystack calls this once before the pipeline runs)."""
        if self._model is None:
            resolved = {
                name: value.resolve_value() if isinstance(value, Secret) else value
                for name, value in self.options.items()
            }
            self._model = embedify.get_model(self.model, **resolved)

    def _loaded(self) -> EmbeddingModel:
        self.warm_up()
        assert self._model is not None
        return self._model

    def _meta(self, report: Report) -> dict[str, Any]:
        info = self._loaded().info
        tokens = report.tokens
        return {
            "model": f"{info.provider}:{info.model_id}",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@component
class EmbedifyTextEmbedder(_EmbedifyComponent):
    """Embeds one query string: ``run(text=...)`` -> ``{"embedding": [...], "meta": {...}}``.

    ``EmbedifyTextEmbedder("local")`` or ``EmbedifyTextEmbedder("openai", dimensions=256,
    api_key=Secret.from_env_var("OPENAI_API_KEY"))``; keyword options are the model's.
    """

    def __init__(
        self, model: str = "local", *, prefix: str = "", suffix: str = "", **options: Any
    ) -> None:
        # @component rebuilds the class, so zero-argument super() cannot find it.
        _EmbedifyComponent.__init__(self, model, prefix, suffix, options)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, model=self.model, prefix=self.prefix, suffix=self.suffix, **self.options
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedifyTextEmbedder:
        return default_from_dict(cls, data)

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        result = self._loaded().embed_with_report([self._prepare(text)], "query")
        return {"embedding": result.vectors[0].tolist(), "meta": self._meta(result.report)}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        result = await self._loaded().aembed_with_report([self._prepare(text)], "query")
        return {"embedding": result.vectors[0].tolist(), "meta": self._meta(result.report)}

    def _prepare(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(
                f"EmbedifyTextEmbedder expects a string as input, got {type(text).__name__}. "
                "To embed a list of Documents, use EmbedifyDocumentEmbedder."
            )
        return self.prefix + text + self.suffix


@component
class EmbedifyDocumentEmbedder(_EmbedifyComponent):
    """Sets ``embedding`` on each document: ``run(documents=[...])`` -> ``{"documents": [...],
    "meta": {...}}``. Like Haystack's embedders, the values of ``meta_fields_to_embed`` are
    joined to the content with ``embedding_separator`` before embedding."""

    def __init__(
        self,
        model: str = "local",
        *,
        prefix: str = "",
        suffix: str = "",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        **options: Any,
    ) -> None:
        # @component rebuilds the class, so zero-argument super() cannot find it.
        _EmbedifyComponent.__init__(self, model, prefix, suffix, options)
        self.meta_fields_to_embed = meta_fields_to_embed or []
        self.embedding_separator = embedding_separator

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            model=self.model,
            prefix=self.prefix,
            suffix=self.suffix,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            **self.options,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedifyDocumentEmbedder:
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        texts = self._prepare(documents)
        result = self._loaded().embed_with_report(texts, "document")
        return self._output(documents, result.vectors.tolist(), result.report)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        texts = self._prepare(documents)
        result = await self._loaded().aembed_with_report(texts, "document")
        return self._output(documents, result.vectors.tolist(), result.report)

    def _prepare(self, documents: list[Document]) -> list[str]:
        if not isinstance(documents, list) or not all(
            isinstance(document, Document) for document in documents
        ):
            raise TypeError(
                "EmbedifyDocumentEmbedder expects a list of Documents as input. "
                "To embed a string, use EmbedifyTextEmbedder."
            )
        return [self._text_of(document) for document in documents]

    def _text_of(self, document: Document) -> str:
        meta_values = [
            str(document.meta[field])
            for field in self.meta_fields_to_embed
            if document.meta.get(field) is not None
        ]
        joined = self.embedding_separator.join([*meta_values, document.content or ""])
        return self.prefix + joined + self.suffix

    def _output(
        self, documents: list[Document], vectors: list[list[float]], report: Report
    ) -> dict[str, Any]:
        embedded = [
            replace(document, embedding=vector)
            for document, vector in zip(documents, vectors, strict=True)
        ]
        return {"documents": embedded, "meta": self._meta(report)}
