"""LangChain's own standard suites for embeddings (langchain-tests), subclassed unmodified as
their documentation says, with embedify's fake model and with the local model."""

from __future__ import annotations

from typing import Any

from embedify_langchain import EmbedifyEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests


class TestFakeUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[EmbedifyEmbeddings]:
        return EmbedifyEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "fake:32"}


class TestFakeIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[EmbedifyEmbeddings]:
        return EmbedifyEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "fake:32"}


class TestLocalUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[EmbedifyEmbeddings]:
        return EmbedifyEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "local"}


class TestLocalIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[EmbedifyEmbeddings]:
        return EmbedifyEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "local"}
