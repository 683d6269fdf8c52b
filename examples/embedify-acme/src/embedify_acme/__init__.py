"""embedify plugin for the (fictional) Acme embeddings API. The entry point imports this module
in every embedify process, so it stays light: the model module (and httpx) load on first use."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "acme",
        "embedify_acme.model:AcmeEmbeddingModel",
        default_model="acme-embed-1",
        models=["acme-embed-1", "acme-embed-mini"],
    )
