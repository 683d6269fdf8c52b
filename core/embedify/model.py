"""The model users hold: the provider protocol plus the calls users make.

A provider subclasses :class:`EmbeddingModel`, declares what the model is (dimension, limits,
how each role is expressed) as data, and implements ``embed_batch`` (or ``aembed_batch`` for a
native async client): that contract is :mod:`embedify.protocol`. Users call ``embed`` and its
twins, which hand the job to the engine, so planning, retries, throttling, truncation, caching
and reporting work the same way for every provider. Imports point one way: this module imports
the engine, and the engine knows only the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

from embedify.engine import embed_job, run_sync
from embedify.errors import InvalidInputError
from embedify.options import ModelOptions, RemoteOptions, Truncate
from embedify.protocol import (
    ROLES,
    Limits,
    ModelInfo,
    ProviderModel,
    Role,
    Vectors,
    estimate_tokens,
    public_name,
    public_url,
)
from embedify.report import EmbeddingResult

# Names defined here before embedify.protocol and embedify.options held them; still importable.
__all__ = [
    "ROLES",
    "EmbeddingModel",
    "Limits",
    "ModelInfo",
    "ModelOptions",
    "RemoteOptions",
    "Role",
    "Truncate",
    "Vectors",
    "estimate_tokens",
    "public_name",
    "public_url",
]


class EmbeddingModel(ProviderModel, abstract=True):
    """Base class of every embedding model.

    Subclasses set the class attributes that describe the model (or set them on the instance in
    ``__init__`` from a table of known models) and implement exactly one of ``embed_batch`` and
    ``aembed_batch`` (see :class:`~embedify.protocol.ProviderModel`). Users call
    ``embed``/``embed_documents``/``embed_query`` and their async twins, which run through the
    engine.
    """

    @overload
    def embed(self, texts: str, role: Role = ..., *, as_list: Literal[False] = ...) -> Vectors: ...
    @overload
    def embed(
        self, texts: Sequence[str], role: Role = ..., *, as_list: Literal[False] = ...
    ) -> Vectors: ...
    @overload
    def embed(
        self, texts: str | Sequence[str], role: Role = ..., *, as_list: Literal[True]
    ) -> list[Any]: ...

    def embed(
        self, texts: str | Sequence[str], role: Role = "document", *, as_list: bool = False
    ) -> Vectors | list[Any]:
        """Embed ``texts`` for ``role``: a ``(n, d)`` float32 array, or ``(d,)`` for one string;
        nested lists of floats with ``as_list=True``."""
        result = self.embed_with_report(_as_batch(texts), role)
        return _shape(result.vectors, single=isinstance(texts, str), as_list=as_list)

    @overload
    def embed_documents(
        self, texts: Sequence[str], *, as_list: Literal[False] = ...
    ) -> Vectors: ...
    @overload
    def embed_documents(self, texts: Sequence[str], *, as_list: Literal[True]) -> list[Any]: ...

    def embed_documents(
        self, texts: Sequence[str], *, as_list: bool = False
    ) -> Vectors | list[Any]:
        """Embed passages to be searched (``role="document"``)."""
        result = self.embed_with_report(_reject_str(texts), "document")
        return _shape(result.vectors, single=False, as_list=as_list)

    @overload
    def embed_query(self, text: str, *, as_list: Literal[False] = ...) -> Vectors: ...
    @overload
    def embed_query(self, text: str, *, as_list: Literal[True]) -> list[Any]: ...

    def embed_query(self, text: str, *, as_list: bool = False) -> Vectors | list[Any]:
        """Embed one search query (``role="query"``); returns a ``(d,)`` vector."""
        result = self.embed_with_report([_one_query(text)], "query")
        return _shape(result.vectors, single=True, as_list=as_list)

    def embed_with_report(self, texts: Sequence[str], role: Role = "document") -> EmbeddingResult:
        """Like ``embed``, and also return the :class:`~embedify.Report` of the job."""
        return run_sync(self.aembed_with_report(texts, role))

    @overload
    async def aembed(
        self, texts: str | Sequence[str], role: Role = ..., *, as_list: Literal[False] = ...
    ) -> Vectors: ...
    @overload
    async def aembed(
        self, texts: str | Sequence[str], role: Role = ..., *, as_list: Literal[True]
    ) -> list[Any]: ...

    async def aembed(
        self, texts: str | Sequence[str], role: Role = "document", *, as_list: bool = False
    ) -> Vectors | list[Any]:
        """Async ``embed``; never blocks the event loop."""
        result = await self.aembed_with_report(_as_batch(texts), role)
        return _shape(result.vectors, single=isinstance(texts, str), as_list=as_list)

    @overload
    async def aembed_documents(
        self, texts: Sequence[str], *, as_list: Literal[False] = ...
    ) -> Vectors: ...
    @overload
    async def aembed_documents(
        self, texts: Sequence[str], *, as_list: Literal[True]
    ) -> list[Any]: ...

    async def aembed_documents(
        self, texts: Sequence[str], *, as_list: bool = False
    ) -> Vectors | list[Any]:
        """Async ``embed_documents``."""
        result = await self.aembed_with_report(_reject_str(texts), "document")
        return _shape(result.vectors, single=False, as_list=as_list)

    @overload
    async def aembed_query(self, text: str, *, as_list: Literal[False] = ...) -> Vectors: ...
    @overload
    async def aembed_query(self, text: str, *, as_list: Literal[True]) -> list[Any]: ...

    async def aembed_query(self, text: str, *, as_list: bool = False) -> Vectors | list[Any]:
        """Async ``embed_query``."""
        result = await self.aembed_with_report([_one_query(text)], "query")
        return _shape(result.vectors, single=True, as_list=as_list)

    async def aembed_with_report(
        self, texts: Sequence[str], role: Role = "document"
    ) -> EmbeddingResult:
        """Async ``embed_with_report``."""
        return await embed_job(self, texts, role)


def _as_batch(texts: str | Sequence[str]) -> Sequence[str]:
    return [texts] if isinstance(texts, str) else texts


def _reject_str(texts: Sequence[str]) -> Sequence[str]:
    if isinstance(texts, str):
        raise InvalidInputError(
            "embed_documents takes a list of texts, not one string; "
            "wrap it in a list or call embed(text)."
        )
    return texts


def _one_query(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(
            f"embed_query takes one string, not a {type(text).__name__}; "
            "for several texts use embed_documents(texts) or embed(texts, 'query')."
        )
    return text


def _shape(vectors: Vectors, *, single: bool, as_list: bool) -> Vectors | list[Any]:
    out = vectors[0] if single else vectors
    return out.tolist() if as_list else out
