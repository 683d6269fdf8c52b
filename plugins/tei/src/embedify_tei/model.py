"""``tei:<url>``: a Text-Embeddings-Inference server's native ``/embed`` route.

The server publishes its limits at ``GET /info``; the first job reads them and the engine plans
requests from them: inputs per request (``max_client_batch_size``), tokens per input
(``max_input_length``), and concurrency (``max_concurrent_requests``: each input of a request
takes one of the server's permits).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import Field

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.responses import vector_matrix

DEFAULT_URL = "http://127.0.0.1:8080"
_BATCH_SIZE = re.compile(r"batch size \d+ > maximum allowed batch size (\d+)")
_TOO_LONG = re.compile(r"must have less than (\d+) tokens. Given: (\d+)")


class TEIOptions(embedify.HTTPOptions):
    prompt_names: dict[str, str] | None = Field(
        None, description="Role -> a prompt name the served model defines, e.g. {'query': 'query'}."
    )


class TEIEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "tei"
    options_class = TEIOptions
    options: TEIOptions
    capabilities = embedify.Capabilities(
        dimensions_mode="native",  # TEI >= 1.8 cuts Matryoshka models server-side
        truncates=True,
    )
    api_key_required = False  # a bearer key only when the server was started with --api-key
    version_paths = ("/v1",)  # the OpenAI-compatible route's prefix, pasted by habit

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id or os.environ.get("TEI_URL") or DEFAULT_URL, **options)
        self.url = self.base_url or DEFAULT_URL
        self.server_info: dict[str, Any] | None = None

    def configure(self) -> embedify.Capabilities:
        """Normalized unless ``normalize=False``; the roles the ``prompt_names`` option gives."""
        prompts = self.options.prompt_names or {}
        return replace(
            self.capabilities,
            normalized=self.options.normalize is not False,
            roles={
                role: f"prompt_name={prompts[role]}" if role in prompts else "no prompt"
                for role in ("document", "query", *prompts)
            },
        )

    def configured_base_url(self) -> str | None:
        return self.options.base_url or self.model_id

    async def prepare(self) -> None:
        """Read ``/info`` and adopt the server's limits (explicit options still win)."""
        info = await self.request_json("GET", "/info")
        if not isinstance(info, dict) or "max_client_batch_size" not in info:
            raise errors.ConfigurationError(
                f"{self.url}/info is not a Text-Embeddings-Inference server's: check the URL."
            )
        limit = self._limit_reader(info)
        batch = limit("max_client_batch_size") or 32
        limits = embedify.Limits(
            max_inputs_per_request=batch,
            max_tokens_per_request=limit("max_batch_tokens"),
            max_tokens_per_input=limit("max_input_length"),
        )
        permits = limit("max_concurrent_requests") or 512
        self.capabilities = replace(
            self.capabilities,
            limits=limits,
            max_concurrency=max(1, min(self.capabilities.max_concurrency, permits // batch)),
        )
        self.server_info = info
        self.revision = f"{info.get('model_id')}@{info.get('model_sha') or 'unknown'}"

    def _limit_reader(self, info: dict[str, Any]) -> Callable[[str], int | None]:
        """Reads one limit of ``/info``: a positive whole number or absent. Anything else (a
        string, a bool, 0, a negative, a float) is a broken or hostile server, refused by name
        rather than planned with."""

        def limit(field: str) -> int | None:
            value = info.get(field)
            if value is None:
                return None
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
                return value
            raise errors.BadResponseError(
                f"{self.url}/info gives {field}={str(value)[:40]!r}; a Text-Embeddings-Inference "
                "server gives a positive whole number: check the URL and the server."
            )

        return limit

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        body: dict[str, Any] = {
            "inputs": texts,
            "normalize": self.capabilities.normalized,
            "truncate": self.options.truncate != "error",
            "truncation_direction": "Left" if self.options.truncate == "start" else "Right",
        }
        prompt = (self.options.prompt_names or {}).get(role)
        if prompt:
            body["prompt_name"] = prompt
        if self.options.dimensions is not None:
            body["dimensions"] = self.options.dimensions
        answer = await self.request_json("POST", "/embed", body)
        return vector_matrix(answer, len(texts), source=repr(self))  # no index: count, width

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """TEI's ``error_type``: Validation (batch size or input length), Overloaded, Unhealthy."""
        status, message, kind, text = (
            response.status,
            response.message,
            response.code,
            response.text,
        )
        if status == 401:
            return errors.AuthenticationError(
                f"tei {status}: missing or wrong bearer token (api_key)", status=status
            )
        if _BATCH_SIZE.search(message):
            return errors.BatchTooLargeError(text, status=status)
        if found := _TOO_LONG.search(message):
            return errors.InputTooLongError(text, status=status, tokens=int(found.group(2)))
        if kind == "Overloaded":
            return errors.RateLimitError(text, status=status)
        if kind == "Unhealthy":
            return errors.TransientError(text, status=status)
        return None
