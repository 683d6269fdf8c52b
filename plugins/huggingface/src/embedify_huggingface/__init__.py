"""embedify plugin: local Hugging Face models. This module stays light; the model, torch,
transformers and onnxruntime load when a model is built."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@hookimpl
def register_models(register: Any) -> None:
    register(
        "local",
        "embedify_huggingface.model:LocalEmbeddingModel",
        default_model=DEFAULT_MODEL,
        aliases=["hf", "huggingface"],
    )


@hookimpl
def register_commands(cli: Any) -> None:
    from embedify_huggingface.cli import export

    cli.add_command(export)
