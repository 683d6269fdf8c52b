"""``azure:<deployment>``: Azure OpenAI, on the OpenAI provider's code.

Two routes: ``deployments`` (``/openai/deployments/{name}/embeddings?api-version=...``, the
classic one; needs ``api_version``) and ``v1`` (``/openai/v1/embeddings``, the deployment as the
model). Authentication by key (``api-key`` header) or Entra ID: a token, or a token provider
that is asked for a token on every request, so a long job outlives each token.
Tell embedify which model the deployment serves (``model="text-embedding-3-small"``) to get its
dimension and ``dimensions`` support before the first call; otherwise they are learned.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NoReturn, cast

from embedify_openai.model import KNOWN_MODELS, OpenAIEmbeddingModel, OpenAIOptions
from pydantic import Field, SecretStr

from embedify import errors

TokenProvider = Callable[[], "str | Awaitable[str]"]
_PER_REQUEST = "entra-token-set-per-request"  # the client's placeholder; never sent


class AzureOptions(OpenAIOptions):
    azure_endpoint: str | None = Field(None, description="https://{resource}.openai.azure.com")
    api_version: str | None = Field(None, description="Required by the deployments route.")
    route: Literal["deployments", "v1"] = "deployments"
    azure_ad_token: SecretStr | None = Field(None, description="Entra ID token.")
    azure_ad_token_provider: TokenProvider | None = Field(
        None, description="Returns an Entra ID token (sync or async); called for every request."
    )
    model: str | None = Field(None, description="The model the deployment serves.")


class AzureOpenAIEmbeddingModel(OpenAIEmbeddingModel):
    provider = "azure"
    default_model_id = None
    options_class = AzureOptions
    options: AzureOptions
    default_base_url = None
    base_url_variables = ("AZURE_OPENAI_ENDPOINT",)
    version_paths = ("/openai/v1", "/openai")  # pasted from the portal or the v1 docs
    api_key_variables = ("AZURE_OPENAI_API_KEY",)

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self._last_token = ""

    def known_model(self) -> dict[str, Any] | None:
        """The row of the model the deployment serves (``model=``), else of its name."""
        return KNOWN_MODELS.get(self.options.model or "") or super().known_model()

    @property
    def endpoint(self) -> str | None:
        """The deployment, whichever route reaches it (a login in the URL shows as ``***@``)."""
        base = super().endpoint
        return f"{base}/openai/deployments/{self.model_id}" if base else None

    def configured_base_url(self) -> str | None:
        return self.options.azure_endpoint or super().configured_base_url()

    def normalize_base_url(self, url: str) -> str:  # the resource root, not OpenAI's rule
        return super(OpenAIEmbeddingModel, self).normalize_base_url(url)

    def _ad_token(self) -> str | None:
        token = self.options.azure_ad_token
        return token.get_secret_value() if token else os.environ.get("AZURE_OPENAI_AD_TOKEN")

    def _uses_entra(self) -> bool:
        return self.options.azure_ad_token_provider is not None or (
            self.options.api_key is None and self._ad_token() is not None
        )

    def secrets(self) -> list[str]:
        return [*super().secrets(), *(t for t in (self._ad_token(), self._last_token) if t)]

    async def prepare(self) -> None:
        if not self.base_url:
            raise errors.ConfigurationError(
                "No Azure endpoint: pass azure_endpoint=... or set AZURE_OPENAI_ENDPOINT."
            )
        if not (self.api_key() or self._uses_entra()):
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

    async def request_headers(self) -> dict[str, str]:
        """A fresh Entra token for each request: the provider refreshes it before it expires."""
        provider = self.options.azure_ad_token_provider
        if provider is None:
            return {}
        token = provider()
        if inspect.isawaitable(token):
            token = await token
        if not token:
            raise errors.AuthenticationError("azure_ad_token_provider returned no token")
        self._last_token = str(token)
        return {"Authorization": f"Bearer {token}"}

    def batch_api(self) -> NoReturn:
        """Not inherited from OpenAI's: Azure runs batches on Global Batch deployments, whose
        documented model availability lists chat and reasoning models, no embedding model
        (learn.microsoft.com/azure/ai-foundry/openai/how-to/batch, checked 2026-12)."""
        raise errors.ConfigurationError(
            "azure-openai: Azure's batch deployments serve no embedding model (their documented "
            "model list has chat and reasoning models only); embed online (--via online), or "
            "use openai: for --via batch."
        )

    def make_client(self) -> Any:
        import openai

        headers = self.default_headers()
        entra = self._uses_entra()
        key = None if entra else self.api_key()
        provider = self.options.azure_ad_token_provider
        static_token = (_PER_REQUEST if provider else self._ad_token()) if entra else None
        common: dict[str, Any] = {
            "timeout": self.options.timeout,
            "max_retries": 0,
            "http_client": self.sdk_http_client(),  # follows no redirect
        }
        if self.options.route == "v1":
            if key:
                headers["api-key"] = key
            return openai.AsyncOpenAI(
                base_url=f"{self.base_url}/openai/v1/",
                api_key=static_token or key,
                default_headers=headers,
                **common,
            )
        credentials: dict[str, Any] = {"api_key": key} if key else {"azure_ad_token": static_token}
        return openai.AsyncAzureOpenAI(
            azure_endpoint=cast(str, self.base_url),  # prepare() refused a missing endpoint
            azure_deployment=self.model_id,
            api_version=self._api_version(),
            default_headers=headers,
            **credentials,
            **common,
        )
