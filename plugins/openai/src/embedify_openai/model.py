"""``openai:<model>``: OpenAI's embeddings API through the official async SDK.

The SDK's own retries are off (``max_retries=0``): the engine retries, throttles and splits.
Vectors are requested as base64 and decoded straight into numpy (a quarter of the JSON of
floats); a compatible server that answers with floats anyway is handled. Inputs are always sent
as strings, never token ids, which compatible servers often reject.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

import embedify
from embedify import errors

KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "text-embedding-3-small": {"dimension": 1536, "dimensions": True},
    "text-embedding-3-large": {"dimension": 3072, "dimensions": True},
    "text-embedding-ada-002": {"dimension": 1536, "dimensions": False},
}
OPENAI_LIMITS = embedify.Limits(
    max_inputs_per_request=2048, max_tokens_per_request=300_000, max_tokens_per_input=8192
)
_RETRY_AFTER = re.compile(r"retry after (\d+) seconds")
_CONTEXT_LENGTH = re.compile(r"maximum context length is (\d+) tokens.*?requested (\d+) tokens")
_TIKTOKEN_FILE = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


class OpenAIOptions(embedify.RemoteOptions):
    organization: str | None = Field(None, description="OpenAI-Organization (OPENAI_ORG_ID).")
    project: str | None = Field(None, description="OpenAI-Project (OPENAI_PROJECT_ID).")
    default_headers: dict[str, str] | None = Field(None, description="Sent with every request.")
    tokenizer: Literal["auto", "tiktoken", "estimate"] = Field(
        "auto", description="auto: tiktoken when its encoding file is available offline."
    )
    max_inputs_per_request: int | None = Field(None, gt=0, description="For compatible servers.")
    max_tokens_per_input: int | None = Field(None, gt=0, description="For compatible servers.")
    max_tokens_per_request: int | None = Field(None, gt=0, description="For compatible servers.")


class OpenAIEmbeddingModel(embedify.EmbeddingModel):
    provider = "openai"
    default_model_id = "text-embedding-3-small"
    options_class: Any = OpenAIOptions
    options: OpenAIOptions
    role_mapping = {
        "document": "same input (no role parameter)",
        "query": "same input (no role parameter)",
    }
    default_max_concurrency = 16
    normalized = True
    api_key_variable = "OPENAI_API_KEY"

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        known = KNOWN_MODELS.get(self.model_id)
        if known is not None:
            self.dimension = known["dimension"]
            self.supports_dimensions = known["dimensions"]
        else:  # another model or a compatible server: learn the dimension, trust `dimensions`
            self.supports_dimensions = self.options.dimensions is not None
            self.normalized = False
        self.limits = embedify.Limits(
            max_inputs_per_request=self.options.max_inputs_per_request
            or OPENAI_LIMITS.max_inputs_per_request,
            max_tokens_per_request=self.options.max_tokens_per_request
            or OPENAI_LIMITS.max_tokens_per_request,
            max_tokens_per_input=self.options.max_tokens_per_input
            or OPENAI_LIMITS.max_tokens_per_input,
        )
        self._encoding = _tiktoken_encoding(self.options.tokenizer)
        self.exact_token_count = self._encoding is not None
        self._clients: dict[int, Any] = {}

    # -- configuration -----------------------------------------------------------------------

    def _secret(self) -> str | None:
        key = self.options.api_key
        return key.get_secret_value() if key else os.environ.get(self.api_key_variable)

    async def prepare(self) -> None:
        if not self._secret():
            raise errors.ConfigurationError(
                f"No API key for {self.provider}: pass api_key=... or set {self.api_key_variable}."
            )

    def make_client(self) -> Any:
        """An ``openai.AsyncOpenAI`` with retries off (subclasses make Azure clients)."""
        import openai

        return openai.AsyncOpenAI(
            api_key=self._secret(),
            base_url=self.options.base_url or os.environ.get("OPENAI_BASE_URL") or None,
            organization=self.options.organization or os.environ.get("OPENAI_ORG_ID"),
            project=self.options.project or os.environ.get("OPENAI_PROJECT_ID"),
            default_headers=self.options.default_headers,
            timeout=self.options.timeout,
            max_retries=0,
        )

    def _client(self) -> Any:
        # httpx pools belong to the event loop that made them: one client per loop.
        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            self._clients[loop] = self.make_client()
        return self._clients[loop]

    # -- the provider's one method -----------------------------------------------------------

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        import openai

        extra: dict[str, Any] = {}
        if self.options.dimensions is not None and self.supports_dimensions:
            extra["dimensions"] = self.options.dimensions
        try:
            raw = await self._client().embeddings.with_raw_response.create(
                input=texts, model=self.model_id, encoding_format="base64", **extra
            )
        except openai.APIError as error:
            raise translate_error(error, self._secret()) from None
        embedify.observe_rate_limit_headers(raw.headers)
        try:  # read the JSON ourselves: the SDK's model building costs more than the request
            items = json.loads(raw.http_response.content)["data"]
        except (ValueError, KeyError, TypeError) as error:
            raise errors.BadResponseError(f"unreadable embeddings response: {error}") from None
        return decode(items, len(texts))

    # -- tokens ------------------------------------------------------------------------------

    def count_tokens(self, texts: Any) -> list[int]:
        if self._encoding is None:
            return super().count_tokens(texts)
        return [len(tokens) for tokens in self._encoding.encode_ordinary_batch(list(texts))]

    def truncate_text(self, text: str, max_tokens: int, side: Literal["end", "start"]) -> str:
        if self._encoding is None:
            return super().truncate_text(text, max_tokens, side)
        tokens = self._encoding.encode_ordinary(text)
        kept = tokens[:max_tokens] if side == "end" else tokens[-max_tokens:]
        decoded: str = self._encoding.decode(kept)
        return decoded


def decode(items: list[dict[str, Any]], count: int) -> np.ndarray:
    """Rows in input order from ``data`` items holding base64 strings or float lists."""
    if len(items) != count:
        raise errors.BadResponseError(
            f"the server returned {len(items)} embeddings for {count} inputs"
        )
    rows: list[np.ndarray] = [np.empty(0, np.float32)] * count
    for item in items:
        value = item["embedding"]
        if isinstance(value, str):
            rows[item["index"]] = np.frombuffer(base64.b64decode(value), dtype="<f4")
        else:
            rows[item["index"]] = np.asarray(value, dtype=np.float32)
    if len({len(row) for row in rows}) != 1:
        raise errors.BadResponseError("the server returned embeddings of different lengths")
    return np.stack(rows)


def _tiktoken_encoding(choice: str) -> Any:
    """cl100k_base when tiktoken can load it without a network (its cache holds the file)."""
    if choice == "estimate":
        return None
    try:
        import tiktoken
    except ImportError:
        if choice == "tiktoken":
            raise errors.ConfigurationError(
                "tokenizer='tiktoken' needs: pip install tiktoken"
            ) from None
        return None
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = Path(cache) if cache else Path(tempfile.gettempdir()) / "data-gym-cache"
    cached = (folder / hashlib.sha1(_TIKTOKEN_FILE.encode()).hexdigest()).exists()
    if not cached and choice == "auto":
        return None  # offline-safe: never download at run time unless asked
    return tiktoken.get_encoding("cl100k_base")


def _error_fields(error: Any) -> tuple[str, str | None, str | None]:
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return (
                str(inner.get("message") or error.message),
                _str(inner.get("type")),
                _str(inner.get("code")),
            )
    return str(getattr(error, "message", error)), None, None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def translate_error(error: Any, secret: str | None) -> errors.ProviderError:
    """The embedify error for an ``openai`` SDK exception (OpenAI's and Azure's bodies)."""
    import openai

    def clean(text: str) -> str:
        return text.replace(secret, "***") if secret else text

    if isinstance(error, openai.APITimeoutError):
        return errors.TransientError("request timed out")
    if isinstance(error, openai.APIConnectionError):
        return errors.TransientError(clean(f"connection failed: {error.__cause__ or error}"))
    if not isinstance(error, openai.APIStatusError):
        return errors.BadResponseError(clean(f"unreadable response: {error}"))
    status = error.status_code
    message, kind, code = _error_fields(error)
    message = clean(message)
    text = f"{status} {code or kind or ''}: {message}".replace("  ", " ")
    retry_after = embedify.retry_after_from_headers(error.response.headers)
    quota = "insufficient_quota" in (kind, code) or code == "credit_balance_exhausted"
    if status == 429 and quota:
        return errors.QuotaExceededError(text, status=status)
    if status == 429 and retry_after is None and (found := _RETRY_AFTER.search(message)):
        retry_after = float(found.group(1))  # Azure may say it only in the message
    if status in (401, 403):
        text += " (check the API key and its permissions)"
    elif status == 404:
        text += " (check the model or deployment name)"
    elif found := _CONTEXT_LENGTH.search(message):
        return errors.InputTooLongError(text, status=status, tokens=int(found.group(2)))
    elif "max_tokens_per_request" in (kind, code) or "Too many inputs" in message:
        return errors.BatchTooLargeError(text, status=status)
    return errors.error_for_status(status, text, retry_after=retry_after)
