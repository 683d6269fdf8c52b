"""embedify plugin: Google Gemini API embeddings (``generativelanguage.googleapis.com``)."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "gemini",
        "embedify_gemini.model:GeminiEmbeddingModel",
        default_model="gemini-embedding-001",
        models=["gemini-embedding-001", "text-embedding-004"],
    )
