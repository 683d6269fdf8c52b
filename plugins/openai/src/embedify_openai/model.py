"""``openai:<model>``: OpenAI's embeddings API through the official async SDK.

The SDK's own retries are off (``max_retries=0``): the engine retries, throttles and splits.
Vectors are requested as base64 and decoded straight into numpy (a quarter of the JSON of
floats); a compatible server that answers with floats anyway is handled. Inputs are always sent
as strings, never token ids, which compatible servers often reject.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.responses import ordered_embeddings, vector_matrix

if TYPE_CHECKING:
    from embedify_openai.batch import OpenAIBatchAPI

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


class OpenAIOptions(embedify.HTTPOptions):
    organization: str | None = Field(None, description="OpenAI-Organization (OPENAI_ORG_ID).")
    project: str | None = Field(None, description="OpenAI-Project (OPENAI_PROJECT_ID).")
    tokenizer: Literal["auto", "tiktoken", "estimate"] = Field(
        "auto", description="auto: tiktoken when its encoding file is available offline."
    )
    max_inputs_per_request: int | None = Field(None, gt=0, description="For compatible servers.")
    max_tokens_per_input: int | None = Field(None, gt=0, description="For compatible servers.")
    max_tokens_per_request: int | None = Field(None, gt=0, description="For compatible servers.")


class OpenAIEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "openai"
    default_model_id: ClassVar[str | None] = "text-embedding-3-small"
    options_class = OpenAIOptions
    options: OpenAIOptions
    capabilities = embedify.Capabilities(
        normalized=True,
        limits=OPENAI_LIMITS,
        roles={
            "document": "same input (no role parameter)",
            "query": "same input (no role parameter)",
        },
        max_concurrency=16,
    )
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    base_url_variables = ("OPENAI_BASE_URL",)
    api_key_variables = ("OPENAI_API_KEY",)

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self._encoding = _tiktoken_encoding(self.options.tokenizer)

    # -- configuration -----------------------------------------------------------------------

    def known_model(self) -> dict[str, Any] | None:
        """This model's row of ``KNOWN_MODELS`` (None: a model the table does not know)."""
        return KNOWN_MODELS.get(self.model_id)

    def configure(self) -> embedify.Capabilities:
        """A known model's dimension and ``dimensions`` support (another model's ``dimensions``
        is sent as asked); the limit options (for compatible servers) over OpenAI's; exact token
        counts when tiktoken is loaded."""
        limits = self.capabilities.limits
        capabilities = replace(
            self.capabilities,
            limits=embedify.Limits(
                max_inputs_per_request=self.options.max_inputs_per_request
                or limits.max_inputs_per_request,
                max_tokens_per_request=self.options.max_tokens_per_request
                or limits.max_tokens_per_request,
                max_tokens_per_input=self.options.max_tokens_per_input
                or limits.max_tokens_per_input,
            ),
            exact_tokens=self._encoding is not None,
        )
        known = self.known_model()
        if known is None:  # another model or a compatible server: learn the dimension
            return replace(
                capabilities,
                dimensions_mode="native" if self.options.dimensions is not None else "fixed",
                normalized=False,
            )
        return replace(
            capabilities,
            dimension=known["dimension"],
            dimensions_mode="native" if known["dimensions"] else "fixed",
        )

    def normalize_base_url(self, url: str) -> str:
        """OpenAI's SDK takes the URL with its version path: a bare host gets ``/v1``; a URL with
        a path is the compatible server's own (``/openai/v1``, ``/v1beta/openai``) and is kept."""
        url = url.rstrip("/")
        return url if urlsplit(url).path else f"{url}/v1"

    def make_client(self) -> Any:
        """An ``openai.AsyncOpenAI`` with retries off (subclasses make Azure clients)."""
        import openai

        return openai.AsyncOpenAI(
            api_key=self.api_key(),
            base_url=self.base_url,
            organization=self.options.organization or os.environ.get("OPENAI_ORG_ID"),
            project=self.options.project or os.environ.get("OPENAI_PROJECT_ID"),
            default_headers=self.default_headers(),
            timeout=self.options.timeout,
            max_retries=0,
            http_client=self.sdk_http_client(),
        )

    def sdk_http_client(self) -> Any:
        """The SDK's HTTP client, following no redirect (the SDK's default client follows them,
        and keeps ``api-key`` and ``default_headers`` on the way to another origin; see
        :func:`embedify.http.redirect_refusal`). On aiohttp when installed: with hundreds of
        requests in flight, httpx's pool costs the client more CPU than decoding the vectors.
        A login in base_url is refused: the SDK's Authorization header is its key."""
        import openai

        if self.base_url_login:
            raise errors.ConfigurationError(
                f"{self.provider}: base_url {self.endpoint} holds a user or password, which the "
                "OpenAI SDK cannot send beside its key; remove them from base_url (a proxy's "
                "credentials can go in default_headers={...})."
            )
        settings: dict[str, Any] = {"timeout": self.options.timeout, "follow_redirects": False}
        on_aiohttp = getattr(openai, "DefaultAioHttpClient", None)
        if on_aiohttp is not None:
            with contextlib.suppress(RuntimeError):  # openai without its ``aiohttp`` extra
                return on_aiohttp(**settings)
        return openai.DefaultAsyncHttpxClient(**settings)

    async def request_headers(self) -> dict[str, str]:
        """Headers computed for each request (Azure's Entra tokens); none for OpenAI."""
        return {}

    # -- the provider's one method -----------------------------------------------------------

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        import openai

        payload: dict[str, Any] = {
            "input": texts,
            "model": self.model_id,
            "encoding_format": "base64",
        }
        if self.options.dimensions is not None and self.capabilities.dimensions_mode == "native":
            payload["dimensions"] = self.options.dimensions
        headers = await self.request_headers()
        try:
            # ``post`` rather than ``embeddings.create``: the request is the same, but create's
            # typed transform walks every input string (a third of the client's CPU in big jobs).
            raw = await self.client().post(
                "/embeddings", body=payload, cast_to=sdk_response(), options={"headers": headers}
            )
        except openai.APIStatusError as error:
            response = error.response
            body = _body(response, error)
            raise self.response_error(
                error.status_code, response.headers, body, str(response.request.url)
            ) from None
        except openai.APIError as error:  # no HTTP answer: timeout, refused, dropped
            raise self.transport_error(error) from None
        self.check_response(raw.status_code, raw.headers, None, "")
        try:  # read the JSON ourselves: the SDK's model building costs more than the request
            body, found = json.loads(raw.content), "JSON without a 'data' list of embeddings"
        except ValueError:
            body, found = None, "no JSON"
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):  # a web page, a proxy's {}: base_url points elsewhere
            shown = errors.untrusted(self.redact(raw.text), 80)
            raise errors.BadResponseError(
                f"{self.redact(str(raw.url))} answered {raw.status_code} with {found} "
                f"({shown}): is base_url ({self.base_url}) an OpenAI-compatible API?",
                status=raw.status_code,
            )
        usage = body.get("usage")
        if isinstance(usage, dict) and type(usage.get("prompt_tokens")) is int:
            # What the key was charged: keeps the token bucket exact when processes share a key.
            embedify.observe_usage(usage["prompt_tokens"])
        return decode(items, len(texts), repr(self))

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """OpenAI's (and Azure's) error objects: quota, context length, request size, models."""
        status, code, message, text = (
            response.status,
            response.code,
            response.message,
            response.text,
        )
        kind = _error_type(response.body)
        if status == 429 and ({code, kind} & QUOTA_CODES):
            return errors.QuotaExceededError(text, status=status)
        if (
            status == 429
            and response.retry_after is None
            and (found := _RETRY_AFTER.search(message))
        ):
            return errors.RateLimitError(text, status=status, retry_after=float(found.group(1)))
        if status == 404 and (code in MODEL_NOT_FOUND_CODES or "does not exist" in message):
            return errors.ModelNotFoundError(
                f"{text} (check the model or deployment name)", status=status
            )
        if found := _CONTEXT_LENGTH.search(message):
            return errors.InputTooLongError(text, status=status, tokens=int(found.group(2)))
        if "max_tokens_per_request" in (code, kind) or "Too many inputs" in message:
            return errors.BatchTooLargeError(text, status=status)
        return None

    # -- the batch API (embedify.bulk.SupportsBatchAPI) ---------------------------------------

    def batch_api(self) -> OpenAIBatchAPI:
        """OpenAI's Batch API for this model's requests (``embed-dataset --via batch``)."""
        from embedify_openai.batch import OpenAIBatchAPI

        return OpenAIBatchAPI(self)

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


@functools.cache
def sdk_response() -> Any:
    """The ``Response`` class of the HTTP library the SDK runs on (httpx; httpx2 from openai 3
    on), which ``client.post(..., cast_to=...)`` returns unparsed."""
    import openai

    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
    return importlib.import_module(base.__module__.partition(".")[0]).Response


def decode(items: Any, count: int, source: str = "the server") -> np.ndarray:
    """Rows in input order from ``data`` items holding base64 strings or float lists; the
    core's checks refuse bad indices, counts, widths and values, naming ``source``."""
    return vector_matrix(ordered_embeddings(items, count, source=source), count, source=source)


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


QUOTA_CODES = {"insufficient_quota", "credit_balance_exhausted"}
MODEL_NOT_FOUND_CODES = {"model_not_found", "DeploymentNotFound"}


def _error_type(body: Any) -> str | None:
    inner = body.get("error") if isinstance(body, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    return None if kind is None else str(kind)


def _body(response: Any, error: Any) -> Any:
    """The error body as the server sent it (the SDK keeps only its inner ``error`` object)."""
    try:
        return response.json()
    except ValueError:
        return response.text or getattr(error, "message", "")
