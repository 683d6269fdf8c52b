"""embedify and LlamaIndex, both ways.

``EmbedifyEmbedding`` is a LlamaIndex embedding backed by any embedify model;
``from_llamaindex(obj)`` and ``get_model("llamaindex:<module>.<Class>")`` make any LlamaIndex
embedding an embedify model. This module stays light: embedify imports it to learn provider
names, so LlamaIndex is imported only when one of those is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embedify import hookimpl
from embedify.lazy import lazy_attributes

if TYPE_CHECKING:
    from embedify_llamaindex.embedding import EmbedifyEmbedding
    from embedify_llamaindex.model import LlamaIndexEmbeddingModel, from_llamaindex

_LAZY = {
    "EmbedifyEmbedding": "embedify_llamaindex.embedding",
    "LlamaIndexEmbeddingModel": "embedify_llamaindex.model",
    "from_llamaindex": "embedify_llamaindex.model",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


@hookimpl
def register_models(register: Any) -> None:
    register("llamaindex", "embedify_llamaindex.model:LlamaIndexEmbeddingModel")


__all__ = ["EmbedifyEmbedding", "LlamaIndexEmbeddingModel", "from_llamaindex"]
