"""``EmbedifyEmbeddings``: a LangChain ``Embeddings`` whose work is done by the embedify engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings

import embedify
from embedify import EmbeddingModel
from embedify.engine import Report
from embedify.protocol import Role


class EmbedifyEmbeddings(Embeddings):
    """Any embedify model as LangChain embeddings::

        vector_store = InMemoryVectorStore(EmbedifyEmbeddings("local"))
        EmbedifyEmbeddings("openai:text-embedding-3-small", batch_size=256, cache=True)

    ``embed_documents`` uses the ``document`` role and ``embed_query`` the ``query`` role; a
    list of documents is one engine call, planned by the model's limits. Keywords are the
    model's options (``embedify.get_model``).
    """

    def __init__(self, model: str | EmbeddingModel = "local", **options: Any) -> None:
        if isinstance(model, EmbeddingModel):
            if options:
                raise TypeError(
                    "EmbedifyEmbeddings(model_instance) takes no model options: pass them to "
                    f"embedify.get_model(...) instead (got {', '.join(sorted(options))})."
                )
            self.model = model
        elif isinstance(model, str):
            self.model = embedify.get_model(model, **options)
        else:
            raise TypeError(
                "EmbedifyEmbeddings expects an embedify model name such as 'local' or "
                f"'openai:text-embedding-3-small', or an embedify EmbeddingModel; got {model!r}."
            )
        self.last_report: Report | None = None
        """The engine's report of the most recent call (cached, embedded, requests, retries)."""

    def __repr__(self) -> str:
        return f"EmbedifyEmbeddings({self.model!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(_documents(texts), "document")

    def embed_query(self, text: str) -> list[float]:
        return self._embed([_query(text)], "query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._aembed(_documents(texts), "document")

    async def aembed_query(self, text: str) -> list[float]:
        return (await self._aembed([_query(text)], "query"))[0]

    def _embed(self, texts: Sequence[str], role: Role) -> list[list[float]]:
        result = self.model.embed_with_report(texts, role)
        self.last_report = result.report
        vectors: list[list[float]] = result.vectors.tolist()
        return vectors

    async def _aembed(self, texts: Sequence[str], role: Role) -> list[list[float]]:
        result = await self.model.aembed_with_report(texts, role)
        self.last_report = result.report
        vectors: list[list[float]] = result.vectors.tolist()
        return vectors


def _documents(texts: list[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(
            "LangChain's embed_documents takes a list of strings, not one string; wrap it in a "
            "list, or call embed_query(text)."
        )
    return list(texts)


def _query(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(
            f"LangChain's embed_query takes one string; got {type(text).__name__}. "
            "Use embed_documents for a list."
        )
    return text
