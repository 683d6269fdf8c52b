"""A complete provider for the Acme embeddings API, as a third party would write it.

Wire protocol: ``POST {base_url}/v1/embed`` with ``{"model", "inputs", "input_type"}`` and a
bearer key; answers ``{"embeddings": [[...]], "usage": {"tokens": n}}``, or an error body
``{"error": {"message", "code"}}``. Everything else (batching, retries, throttling, caching)
is embedify's.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import numpy as np

import embedify
from embedify import errors

MODELS = {"acme-embed-1": 256, "acme-embed-mini": 64}
INPUT_TYPES = {"document": "document", "query": "query"}


class AcmeEmbeddingModel(embedify.EmbeddingModel):
    provider = "acme"
    options_class = embedify.RemoteOptions
    role_mapping = {role: f"input_type={value}" for role, value in INPUT_TYPES.items()}
    limits = embedify.Limits(
        max_inputs_per_request=64, max_tokens_per_request=8192, max_tokens_per_input=512
    )
    matryoshka = True

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.dimension = MODELS.get(self.model_id)
        self._clients: dict[int, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        import asyncio

        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            key = self.options.api_key
            secret = key.get_secret_value() if key else os.environ.get("ACME_API_KEY")
            if not secret:
                raise errors.AuthenticationError(
                    "no Acme API key: pass api_key= or set ACME_API_KEY"
                )
            self._clients[loop_id] = httpx.AsyncClient(
                base_url=self.options.base_url or "https://api.acme.example",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=self.options.timeout,
            )
        return self._clients[loop_id]

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        body = {"model": self.model_id, "inputs": texts, "input_type": INPUT_TYPES[role]}
        try:
            response = await self._client().post("/v1/embed", json=body)
        except httpx.TimeoutException as error:
            raise errors.TransientError(f"Acme timed out: {error}") from None
        except httpx.TransportError as error:
            raise errors.TransientError(f"Acme connection failed: {error!r}") from None
        if response.status_code != 200:
            raise _translate(response)
        embedify.observe_rate_limit_headers(response.headers)
        return np.asarray(response.json()["embeddings"], dtype=np.float32)


def _translate(response: httpx.Response) -> errors.ProviderError:
    status = response.status_code
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError):
        message, code = response.text[:200] or response.reason_phrase, None
    message = f"Acme {status}: {message}"
    if code == "input_too_long":
        return errors.InputTooLongError(message, status=status, index=error.get("index"))
    retry_after = embedify.retry_after_from_headers(response.headers)
    return errors.error_for_status(status, message, retry_after=retry_after)
