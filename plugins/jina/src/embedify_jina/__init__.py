"""embedify plugin: Jina AI embeddings. Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "jina",
        "embedify_jina.model:JinaEmbeddingModel",
        default_model="jina-embeddings-v3",
        models=[
            "jina-embeddings-v3",
            "jina-embeddings-v4",
            "jina-embeddings-v2-base-en",
            "jina-clip-v2",
            "jina-code-embeddings-0.5b",
            "jina-code-embeddings-1.5b",
        ],
    )
