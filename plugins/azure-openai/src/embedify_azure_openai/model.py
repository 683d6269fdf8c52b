"""``azure:<deployment>``: Azure OpenAI, on the OpenAI provider's code.

Two routes: ``deployments`` (``/openai/deployments/{name}/embeddings?api-version=...``, the
classic one; needs ``api_version``) and ``v1`` (``/openai/v1/embeddings``, the deployment as the
model). Authentication by key (``api-key`` header) or Entra ID (a token or a token provider).
Tell embedify which model the deployment serves (``model="text-embedding-3-small"``) to get its
dimension and ``dimensions`` support before the first call; otherwise they are learned.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

from embedify_openai.model import KNOWN_MODELS, OpenAIEmbeddingModel, OpenAIOptions
from pydantic import Field, SecretStr

from embedify import errors


class AzureOptions(OpenAIOptions):
    azure_endpoint: str | None = Field(None, description="https://{resource}.openai.azure.com")
    api_version: str | None = Field(None, description="Required by the deployments route.")
    route: Literal["deployments", "v1"] = "deployments"
    azure_ad_token: SecretStr | None = Field(None, description="Entra ID token.")
    azure_ad_token_provider: Callable[[], str] | None = Field(None, description="Returns a token.")
    model: str | None = Field(None, description="The model the deployment serves.")


class AzureOpenAIEmbeddingModel(OpenAIEmbeddingModel):
    provider = "azure"
    default_model_id = None
    options_class = AzureOptions
    options: AzureOptions
    api_key_variable = "AZURE_OPENAI_API_KEY"

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        known = KNOWN_MODELS.get(self.options.model or "")
        if known is not None:
            self.dimension = known["dimension"]
            self.supports_dimensions = known["dimensions"]
            self.normalized = True

    def _endpoint(self) -> str | None:
        return (
            self.options.azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or ""
        ).rstrip("/") or None

    def _ad_token(self) -> str | None:
        token = self.options.azure_ad_token
        return token.get_secret_value() if token else os.environ.get("AZURE_OPENAI_AD_TOKEN")

    async def prepare(self) -> None:
        if not self._endpoint():
            raise errors.ConfigurationError(
                "No Azure endpoint: pass azure_endpoint=... or set AZURE_OPENAI_ENDPOINT."
            )
        if not (self._secret() or self._ad_token() or self.options.azure_ad_token_provider):
            raise errors.ConfigurationError(
                "No Azure credentials: pass api_key=, azure_ad_token= or azure_ad_token_provider=, "
                "or set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN."
            )
        if self.options.route == "deployments" and not self._api_version():
            raise errors.ConfigurationError(
                "The deployments route needs api_version=... (or OPENAI_API_VERSION), "
                "e.g. '2024-10-21'; or use route='v1'."
            )

    def _api_version(self) -> str | None:
        return self.options.api_version or os.environ.get("OPENAI_API_VERSION")

    def make_client(self) -> Any:
        import openai

        common: dict[str, Any] = {
            "timeout": self.options.timeout,
            "max_retries": 0,
            "default_headers": self.options.default_headers,
        }
        if self.options.route == "v1":
            provider = self.options.azure_ad_token_provider
            token = provider() if provider else self._ad_token()
            headers = dict(self.options.default_headers or {})
            if self._secret() and not token:
                headers["api-key"] = self._secret() or ""
            return openai.AsyncOpenAI(
                base_url=f"{self._endpoint()}/openai/v1/",
                api_key=token or self._secret(),
                **{**common, "default_headers": headers},
            )
        credentials: dict[str, Any] = {}
        if self.options.azure_ad_token_provider is not None:
            credentials["azure_ad_token_provider"] = self.options.azure_ad_token_provider
        elif self._secret():
            credentials["api_key"] = self._secret()
        else:
            credentials["azure_ad_token"] = self._ad_token()
        return openai.AsyncAzureOpenAI(
            azure_endpoint=self._endpoint(),
            azure_deployment=self.model_id,
            api_version=self._api_version(),
            **credentials,
            **common,
        )
