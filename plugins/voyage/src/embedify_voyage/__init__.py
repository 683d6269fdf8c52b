"""embedify plugin: Voyage AI embeddings. Light on purpose: the model module loads on first use."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "voyage",
        "embedify_voyage.model:VoyageEmbeddingModel",
        default_model="voyage-3.5",
        models=[
            "voyage-3.5",
            "voyage-3.5-lite",
            "voyage-3-large",
            "voyage-code-3",
            "voyage-4",
            "voyage-4-lite",
            "voyage-4-large",
            "voyage-finance-2",
            "voyage-law-2",
        ],
    )
