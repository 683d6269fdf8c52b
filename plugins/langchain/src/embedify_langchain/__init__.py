"""embedify and LangChain, both ways.

``EmbedifyEmbeddings`` is a LangChain ``Embeddings`` backed by any embedify model;
``from_langchain(obj)`` and ``get_model("langchain:<module>.<Class>")`` make any LangChain
embedding an embedify model. This module stays light: embedify imports it to learn provider
names, so LangChain is imported only when one of those is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embedify import hookimpl

if TYPE_CHECKING:
    from embedify_langchain.embeddings import EmbedifyEmbeddings
    from embedify_langchain.model import LangChainEmbeddingModel, from_langchain

_LAZY = {
    "EmbedifyEmbeddings": "embedify_langchain.embeddings",
    "LangChainEmbeddingModel": "embedify_langchain.model",
    "from_langchain": "embedify_langchain.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedify_langchain' has no attribute {name!r}")


@hookimpl
def register_models(register: Any) -> None:
    register("langchain", "embedify_langchain.model:LangChainEmbeddingModel")


__all__ = ["EmbedifyEmbeddings", "LangChainEmbeddingModel", "from_langchain"]
