"""embedify and LangChain, both ways.

``EmbedifyEmbeddings`` is a LangChain ``Embeddings`` backed by any embedify model;
``from_langchain(obj)`` and ``get_model("langchain:<module>.<Class>")`` make any LangChain
embedding an embedify model. This module stays light: embedify imports it to learn provider
names, so LangChain is imported only when one of those is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embedify import hookimpl
from embedify.lazy import lazy_attributes

if TYPE_CHECKING:
    from embedify_langchain.embeddings import EmbedifyEmbeddings
    from embedify_langchain.model import LangChainEmbeddingModel, from_langchain

_LAZY = {
    "EmbedifyEmbeddings": "embedify_langchain.embeddings",
    "LangChainEmbeddingModel": "embedify_langchain.model",
    "from_langchain": "embedify_langchain.model",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


@hookimpl
def register_models(register: Any) -> None:
    register("langchain", "embedify_langchain.model:LangChainEmbeddingModel")


__all__ = ["EmbedifyEmbeddings", "LangChainEmbeddingModel", "from_langchain"]
