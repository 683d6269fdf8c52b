"""embedify plugin: Cohere embeddings. Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "cohere",
        "embedify_cohere.model:CohereEmbeddingModel",
        default_model="embed-english-v3.0",
        models=[
            "embed-v4.0",
            "embed-english-v3.0",
            "embed-multilingual-v3.0",
            "embed-english-light-v3.0",
            "embed-multilingual-light-v3.0",
        ],
    )
