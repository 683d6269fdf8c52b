"""``bedrock:<model id>``: Amazon Bedrock's InvokeModel through boto3 (``bedrock-runtime``).

boto3 is synchronous: each request runs in this model's own thread pool, as wide as the engine
may go, so Titan's one-text requests run side by side. botocore's retries are off
(``total_max_attempts=1``: ``max_attempts`` counts *retries*, so ``max_attempts=1`` would retry
once; botocore.config.Config) so the engine owns them. Credentials and region come from boto3's
chain (never read or shown here); ``AWS_BEARER_TOKEN_BEDROCK`` (a Bedrock API key) works too.

Facts used (sources):

- InvokeModel: POST /model/{modelId}/invoke (the id URL-encoded), rest-json, SigV4; errors
  carry ``x-amzn-ErrorType`` and ``{"message": ...}``: ThrottlingException 429, AccessDenied
  403, ResourceNotFound 404, Validation 400, ServiceQuotaExceeded 400, ModelNotReady 429 (not
  throttling), ModelTimeout 408, ModelError 424, InternalServer 500, ServiceUnavailable 503
  (botocore's bedrock-runtime service model;
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html). No
  rate-limit or Retry-After header is documented.
- Titan Text Embeddings V2: ``{"inputText", "dimensions": 1024|512|256, "normalize",
  "embeddingTypes": ["float", "binary"]}`` (normalize defaults to true) -> ``{"embedding",
  "inputTextTokenCount", "embeddingsByType": {"binary": [int, ...], "float": [...]}}``; the
  binary list holds one 0/1 per dimension (AWS's binary-embeddings launch post), packed here
  into ``binary``/``ubinary`` codes as sentence-transformers packs them; one text per call,
  8,192 tokens (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html,
  https://docs.aws.amazon.com/bedrock/latest/userguide/titan-embedding-models.html). An
  over-long text: "400 Bad Request: Too many input tokens. Max input tokens: 8192, request
  input token count: N" (github.com/aws-samples/amazon-bedrock-workshop/issues/136).
- Cohere Embed v3: ``{"texts", "input_type", "truncate": NONE|START|END, "embedding_types"}``
  -> ``{"embeddings": {"float": [...]}}`` (embedding types float, int8, uint8, binary, ubinary:
  ``precision`` maps to them, as on Cohere's own API); 0-96 texts and 0-2048 characters per
  text, 512 tokens (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html).
  The engine's estimate (3 bytes a token) keeps a 512-token text under 2048 characters. Errors
  seen: "Malformed input request: #/texts/0: expected maxLength: 2048, actual: N, ..."
  (github.com/ScrapeGraphAI/Scrapegraph-ai/issues/400), "Input is too long for requested
  model." (github.com/run-llama/llama_index/issues/14118). The too-many-texts message is not
  documented: "maximum item count" is matched, a guess from the same schema validator's wording.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from os import environ
from typing import Any

import numpy as np
from pydantic import Field

import embedify
from embedify import errors
from embedify.protocol import Vectors, public_url
from embedify.quantize import PACKED, PRECISIONS
from embedify.responses import vector_matrix

INPUT_TYPES = {
    "document": "search_document",
    "query": "search_query",
    "classification": "classification",
    "clustering": "clustering",
}
TRUNCATE = {"error": "NONE", "end": "END", "start": "START"}
COHERE = {"schema": "cohere", "dimension": 1024, "inputs": 96, "tokens": 512}
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "amazon.titan-embed-text-v2:0": {
        "schema": "titan",
        "dimension": 1024,
        "dimensions": (256, 512, 1024),
        "inputs": 1,
        "tokens": 8192,
    },
    "cohere.embed-english-v3": COHERE,
    "cohere.embed-multilingual-v3": COHERE,
}
ERRORS: dict[str, type[errors.ProviderError]] = {
    "ThrottlingException": errors.RateLimitError,
    "AccessDeniedException": errors.AuthenticationError,
    "UnrecognizedClientException": errors.AuthenticationError,
    "InvalidSignatureException": errors.AuthenticationError,
    "ExpiredTokenException": errors.AuthenticationError,
    "ResourceNotFoundException": errors.ModelNotFoundError,
    "ServiceQuotaExceededException": errors.QuotaExceededError,
    "ModelNotReadyException": errors.TransientError,
    "InternalServerException": errors.TransientError,
    "ServiceUnavailableException": errors.TransientError,
    "ModelTimeoutException": errors.RequestTimeoutError,
    "ValidationException": errors.InvalidRequestError,
}
"""botocore's error code -> embedify's; a code not listed (a proxy's 413) goes by its status."""
BEARER_TOKEN = "AWS_BEARER_TOKEN_BEDROCK"  # a Bedrock API key, which botocore reads itself
THREADS = 64  # requests in flight when max_concurrency is unset: the engine's adaptive ceiling
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or AWS_BEARER_TOKEN_BEDROCK "
    "(boto3's credential chain)"
)


class BedrockOptions(embedify.ModelOptions):
    region: str | None = Field(
        None, description="AWS region; else boto3's (AWS_REGION, AWS_DEFAULT_REGION, profile)."
    )
    endpoint_url: str | None = Field(
        None, description="bedrock-runtime URL: a VPC endpoint, a proxy, a test server."
    )


class BedrockEmbeddingModel(embedify.EmbeddingModel):
    provider = "bedrock"
    default_model_id = "amazon.titan-embed-text-v2:0"
    options_class = BedrockOptions
    options: BedrockOptions

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.schema = KNOWN_MODELS.get(self.model_id, {}).get("schema") or _schema(self.model_id)
        threads = self.options.max_concurrency or THREADS
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="embedify-bedrock")
        weakref.finalize(self, self._executor.shutdown, wait=False)
        self._threads, self._lock, self._client_made = threads, threading.Lock(), None

    def configure(self) -> embedify.Capabilities:
        known = KNOWN_MODELS.get(self.model_id, {})
        allowed = known.get("dimensions")
        capabilities = replace(
            self.capabilities,
            dimension=known.get("dimension"),
            allowed_dimensions=allowed,
            dimensions_mode="fixed" if allowed is None else "native",
            normalized=bool(known) and self.options.normalize is not False,
            limits=embedify.Limits(
                max_inputs_per_request=known.get("inputs", 1 if self.schema == "titan" else 96),
                max_tokens_per_input=known.get("tokens", 512 if self.schema == "cohere" else 8192),
            ),
        )
        if self.schema == "cohere":
            roles = {role: f"input_type={kind}" for role, kind in INPUT_TYPES.items()}
            capabilities = replace(capabilities, roles=roles, precisions=PRECISIONS)
        elif known:
            capabilities = replace(capabilities, precisions=("float32", *PACKED))
        return capabilities

    @property
    def endpoint(self) -> str | None:
        url = self.options.endpoint_url
        return public_url(url.rstrip("/")) if url else None

    def client(self) -> Any:
        """This model's boto3 client (thread-safe; made once, on its own session)."""
        with self._lock:
            if self._client_made is None:
                import boto3  # type: ignore[import-untyped]
                from botocore.config import Config  # type: ignore[import-untyped]

                session = boto3.session.Session()
                if session.get_credentials() is None and not environ.get(BEARER_TOKEN):
                    raise errors.ConfigurationError(
                        f"No AWS credentials for bedrock: {CREDENTIALS_HINT}."
                    )
                # boto3 reads AWS_DEFAULT_REGION and the profile; other AWS SDKs read AWS_REGION
                region = self.options.region or session.region_name or environ.get("AWS_REGION")
                if not region:
                    raise errors.ConfigurationError(
                        "No AWS region for bedrock: pass region=... or set AWS_REGION."
                    )
                config = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=self.options.timeout,
                    read_timeout=self.options.timeout,
                    max_pool_connections=self._threads,
                )
                self._client_made = session.client(
                    "bedrock-runtime",
                    region_name=region,
                    endpoint_url=self.options.endpoint_url,
                    config=config,
                )
            return self._client_made

    async def prepare(self) -> None:
        """Fail at once, in one line, without a region or credentials."""
        await asyncio.to_thread(self.client)

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        if self.schema == "titan":
            body: dict[str, Any] = {"inputText": texts[0]}
            if self.options.dimensions is not None:
                body["dimensions"] = self.options.dimensions
            if self.options.normalize is not None:
                body["normalize"] = self.options.normalize
            if self.quantized_by == "provider":
                body["embeddingTypes"] = ["binary"]
        else:
            kind = "float" if self.options.precision == "float32" else self.options.precision
            body = {
                "texts": texts,
                "input_type": INPUT_TYPES[role],
                "truncate": TRUNCATE[self.options.truncate],
                "embedding_types": [kind],
            }
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(self._executor, self._invoke, body)
        except ClientError as error:
            raise self.client_error(error) from None
        except BotoCoreError as error:
            raise self.transport_error(error) from None
        if self.schema == "titan" and "embeddingTypes" in body:
            return self._packed(answer, self.options.precision)
        if self.schema == "titan":
            rows = [answer.get("embedding")] if isinstance(answer, dict) else answer
        else:
            rows = answer.get("embeddings") if isinstance(answer, dict) else answer
            rows = rows.get(kind) if isinstance(rows, dict) else rows
        return vector_matrix(rows, len(texts), source=repr(self))

    def _packed(self, answer: Any, precision: str) -> Vectors:
        """Titan's binary answer (one 0/1 per dimension) as packed ``precision`` codes."""
        by_type = answer.get("embeddingsByType") if isinstance(answer, dict) else None
        rows = by_type.get("binary") if isinstance(by_type, dict) else None
        width = self.options.dimensions or self.capabilities.dimension
        bits = vector_matrix([rows], 1, source=repr(self), width=width)
        if not np.isin(bits, (0.0, 1.0)).all():
            raise errors.BadResponseError(f"{self!r} returned binary values other than 0 and 1")
        packed = np.packbits(bits.astype(np.uint8), axis=1).astype(np.float32)
        return packed - 128 if precision == "binary" else packed

    def _invoke(self, body: dict[str, Any]) -> Any:
        response = self.client().invoke_model(
            modelId=self.model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        try:
            return json.loads(response["body"].read())
        except ValueError:
            raise errors.BadResponseError(f"{self!r} answered without JSON") from None

    def client_error(self, error: Any) -> errors.ProviderError:
        """An error answer (botocore's ClientError) as embedify's error."""
        detail, meta = error.response.get("Error", {}), error.response.get("ResponseMetadata", {})
        code = errors.untrusted(detail.get("Code") or "", 60)
        message = errors.untrusted(detail.get("Message") or "")
        status, headers = meta.get("HTTPStatusCode") or 0, meta.get("HTTPHeaders") or {}
        embedify.observe_rate_limit_headers(headers)
        text = f"bedrock {status} {code}: {message}"
        if status == 400 and _TOO_MANY.search(message):
            return errors.BatchTooLargeError(text, status=status)
        if status == 400 and _TOO_LONG.search(message):
            index, tokens = _TEXT_INDEX.search(message), _TOKEN_COUNT.search(message)
            return errors.InputTooLongError(
                text,
                status=status,
                index=int(index[1]) if index else None,
                tokens=int(tokens[1]) if tokens else None,
            )
        if status == 400 and "model identifier is invalid" in message:
            return errors.ModelNotFoundError(text, status=status)
        kind = ERRORS.get(code)
        if kind is None:
            retry_after = embedify.retry_after_from_headers(headers)
            return errors.error_for_status(status, text, retry_after=retry_after)
        if issubclass(kind, errors.AuthenticationError):
            text += f" (check the AWS credentials: {CREDENTIALS_HINT}; and access to the model)"
        if issubclass(kind, errors.TransientError):
            return kind(text, status=status, retry_after=embedify.retry_after_from_headers(headers))
        return kind(text, status=status)

    def transport_error(self, error: Exception) -> errors.EmbedifyError:
        """A botocore failure without an answer: below HTTP it is transient; anything else
        (credentials, parameters, endpoint settings) is the configuration's."""
        from botocore import exceptions as boto  # type: ignore[import-untyped]

        host = self._client_made.meta.endpoint_url if self._client_made else None
        if isinstance(error, boto.ReadTimeoutError):
            return errors.RequestTimeoutError(f"bedrock gave no answer in time from {host}")
        if isinstance(error, (boto.ConnectionError, boto.ConnectionClosedError)):
            unresolved = any(
                isinstance(cause, socket.gaierror) for cause in errors.exception_chain(error)
            )
            return errors.ConnectionFailedError(
                f"bedrock: {'cannot resolve the host: ' if unresolved else ''}{error}",
                host=host,
                name_resolution=unresolved,
            )
        if isinstance(error, boto.HTTPClientError):
            return errors.TransientError(f"bedrock request to {host} failed: {error}")
        if isinstance(error, (boto.NoCredentialsError, boto.PartialCredentialsError)):
            return errors.ConfigurationError(
                f"No usable AWS credentials for bedrock: {CREDENTIALS_HINT}."
            )
        return errors.ConfigurationError(f"bedrock: {error}")


def _schema(model_id: str) -> str:
    """The request format of a model id this plugin does not list, by its family."""
    if "cohere.embed" in model_id:
        return "cohere"
    if "titan-embed-text" in model_id:
        return "titan"
    raise errors.ConfigurationError(
        f"bedrock:{model_id}: not a text embedding model this plugin speaks to; it knows "
        f"{', '.join(KNOWN_MODELS)} and other Titan text or Cohere embed models."
    )


_TOO_MANY = re.compile(r"maximum item count", re.IGNORECASE)
_TOO_LONG = re.compile(r"too many input tokens|too long|maxLength", re.IGNORECASE)
_TEXT_INDEX = re.compile(r"#/texts/(\d+)")
_TOKEN_COUNT = re.compile(r"input token count: (\d+)")
