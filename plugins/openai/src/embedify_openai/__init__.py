"""embedify plugin: OpenAI embeddings (and OpenAI-compatible servers). Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "openai",
        "embedify_openai.model:OpenAIEmbeddingModel",
        default_model="text-embedding-3-small",
        models=["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"],
    )
