"""embedify plugin: Amazon Bedrock embeddings through boto3. Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "bedrock",
        "embedify_bedrock.model:BedrockEmbeddingModel",
        default_model="amazon.titan-embed-text-v2:0",
        models=[
            "amazon.titan-embed-text-v2:0",
            "cohere.embed-english-v3",
            "cohere.embed-multilingual-v3",
        ],
    )
