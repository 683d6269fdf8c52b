"""embedify plugin: Hugging Face Text-Embeddings-Inference (``tei:http://host:port``)."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register("tei", "embedify_tei.model:TEIEmbeddingModel")
