"""embedify plugin: Azure OpenAI (``azure:<deployment>``). Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "azure", "embedify_azure_openai.model:AzureOpenAIEmbeddingModel", aliases=["azure-openai"]
    )
