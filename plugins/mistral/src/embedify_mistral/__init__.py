"""embedify plugin: Mistral AI embeddings. Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "mistral",
        "embedify_mistral.model:MistralEmbeddingModel",
        default_model="mistral-embed",
        models=["mistral-embed", "codestral-embed"],
    )
