"""embedify plugin: embedding models served by Ollama (``ollama:<model>``). Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "ollama",
        "embedify_ollama.model:OllamaEmbeddingModel",
        default_model="nomic-embed-text",
        models=[
            "nomic-embed-text",
            "mxbai-embed-large",
            "all-minilm",
            "snowflake-arctic-embed",
            "embeddinggemma",
            "bge-m3",
        ],
    )
