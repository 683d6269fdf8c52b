"""``cohere:<model>``: Cohere's ``/v2/embed`` through the official async SDK (``AsyncClientV2``).

The v2 client does not batch, so the engine's 96-texts-per-request limit is what keeps requests
valid; its retries are off so the engine owns them. Roles become ``input_type``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

import numpy as np
from pydantic import Field

import embedify
from embedify import errors

KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "embed-v4.0": {"dimension": 1536, "dimensions": (256, 512, 1024, 1536), "tokens": 128_000},
    "embed-english-v3.0": {"dimension": 1024, "dimensions": None, "tokens": 512},
    "embed-multilingual-v3.0": {"dimension": 1024, "dimensions": None, "tokens": 512},
    "embed-english-light-v3.0": {"dimension": 384, "dimensions": None, "tokens": 512},
    "embed-multilingual-light-v3.0": {"dimension": 384, "dimensions": None, "tokens": 512},
}
INPUT_TYPES = {
    "document": "search_document",
    "query": "search_query",
    "classification": "classification",
    "clustering": "clustering",
}
TRUNCATE = {"error": "NONE", "end": "END", "start": "START"}
EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary"]


class CohereOptions(embedify.RemoteOptions):
    embedding_type: EmbeddingType = Field(
        "float", description="int8/uint8 give integer values; binary/ubinary pack 8 dims a byte."
    )
    client_name: str | None = Field(None, description="X-Client-Name header.")


class CohereEmbeddingModel(embedify.EmbeddingModel):
    provider = "cohere"
    default_model_id = "embed-english-v3.0"
    options_class = CohereOptions
    options: CohereOptions
    role_mapping = {role: f"input_type={value}" for role, value in INPUT_TYPES.items()}
    default_max_concurrency = 8
    truncates_natively = True  # the server cuts per `truncate` (END/START) and says nothing

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        known = KNOWN_MODELS.get(self.model_id, {})
        self.allowed_dimensions = known.get("dimensions")
        self.supports_dimensions = self.allowed_dimensions is not None
        kind = self.options.embedding_type
        packed = kind in ("binary", "ubinary")
        if self.options.dimensions is not None and packed:
            raise errors.ConfigurationError("dimensions cannot be combined with binary embeddings")
        native = known.get("dimension")
        self.dimension = native // 8 if native and packed else native
        self.normalized = kind == "float" and bool(known)
        self.output_dtypes = (kind,)
        self.limits = embedify.Limits(
            max_inputs_per_request=96, max_tokens_per_input=known.get("tokens")
        )
        self._clients: dict[int, Any] = {}

    def _secret(self) -> str | None:
        key = self.options.api_key
        if key:
            return key.get_secret_value()
        return os.environ.get("CO_API_KEY") or os.environ.get("COHERE_API_KEY")

    async def prepare(self) -> None:
        if not self._secret():
            raise errors.ConfigurationError(
                "No Cohere API key: pass api_key=... or set CO_API_KEY (or COHERE_API_KEY)."
            )

    def _client(self) -> Any:
        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            import cohere

            self._clients[loop] = cohere.AsyncClientV2(
                api_key=self._secret(),
                # CO_API_URL is read by the SDK at import time; read it now instead.
                base_url=self.options.base_url
                or os.environ.get("CO_API_URL")
                or "https://api.cohere.com",
                client_name=self.options.client_name,
                timeout=self.options.timeout,
                max_retries=0,
            )
        return self._clients[loop]

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        import httpx
        from cohere.core.api_error import ApiError

        extra: dict[str, Any] = {}
        if self.options.dimensions is not None:
            extra["output_dimension"] = self.options.dimensions
        kind = self.options.embedding_type
        try:
            raw = await self._client().with_raw_response.embed(
                model=self.model_id,
                texts=texts,
                input_type=INPUT_TYPES[role],
                embedding_types=[kind],
                truncate=TRUNCATE[self.options.truncate],
                **extra,
            )
        except ApiError as error:
            raise translate_error(error) from None
        except (httpx.TimeoutException, httpx.TransportError) as error:
            raise errors.TransientError(f"Cohere request failed: {type(error).__name__}") from None
        embedify.observe_rate_limit_headers(raw.headers)
        vectors = getattr(raw.data.embeddings, "float_" if kind == "float" else kind)
        if vectors is None:
            raise errors.BadResponseError(f"Cohere returned no {kind!r} embeddings")
        return np.asarray(vectors, dtype=np.float32)


def translate_error(error: Any) -> errors.ProviderError:
    status = error.status_code or 0
    body = error.body
    message = str(body.get("message", body)) if isinstance(body, dict) else str(body)
    text = f"Cohere {status}: {message}"
    lowered = message.lower()
    if status == 400 and "must be at most" in lowered:
        return errors.BatchTooLargeError(text, status=status)
    if status == 400 and ("too long" in lowered or ("exceeds" in lowered and "token" in lowered)):
        return errors.InputTooLongError(text, status=status)
    if status == 402 or (status == 429 and "per month" in lowered):
        return errors.QuotaExceededError(text, status=status)
    if status == 498:
        return errors.AuthenticationError(text, status=status)
    if status == 499:
        return errors.TransientError(text, status=status)
    retry_after = embedify.retry_after_from_headers(error.headers or {})
    return errors.error_for_status(status, text, retry_after=retry_after)
