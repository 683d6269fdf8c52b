"""A loopback server speaking OpenAI's embeddings protocol (and Azure OpenAI's routes).

It is what the unmodified ``openai`` SDK expects: ``POST /v1/embeddings`` with a bearer key,
the request validation of the real API (2048 inputs, 8192 tokens per input, 300,000 tokens per
request, no empty strings, no ``dimensions`` for ada-002) with its exact error bodies, float or
base64 (little-endian float32) answers, ``x-ratelimit-*`` headers, and switchable faults: 429
storms with ``Retry-After``, an exhausted quota, 5xx, latency, dropped connections, and a
requests/tokens-per-minute limit. Azure: ``/openai/deployments/{name}/embeddings?api-version=``
(``api-key`` header or bearer token; api-version required) and ``/openai/v1/embeddings``, with
Azure's error bodies (string ``code``, no ``type``).

Tokens are counted by a simple rule (a word or a punctuation mark is one token), which the
client's estimate does not always bound: that is what exercises the client's handling of
the server's "maximum context length" errors.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedify.testing import FakeService, Request, Response, embedding_items

API_KEY = "sk-test-0123456789abcdef"
MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_PUNCTUATION = ".,;:!?()[]{}\"'"


def count_tokens(text: str) -> int:
    """The server's token count: words plus punctuation marks (cheap, and not what the client's
    byte-based estimate assumes, which is the point)."""
    return len(text.split()) + sum(text.count(mark) for mark in _PUNCTUATION)


def vector_for(model: str, text: str, dimension: int | None = None) -> np.ndarray:
    """The server's deterministic vector for a text (unit length, after ``dimensions``)."""
    size = MODELS.get(model, 64)
    raw = hashlib.shake_256(f"{model}\0{text}".encode()).digest(2 * size)
    vector = np.frombuffer(raw, dtype="<i2")[: dimension or size].astype(np.float32)
    return vector / np.linalg.norm(vector)


def _error(
    status: int,
    message: str,
    type_: str | None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Response(status, body, headers={"x-request-id": "req_test", **(headers or {})})


def _azure_error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


@dataclass
class FakeOpenAI(FakeService):
    """Call it with a :class:`Request` (pass it to ``LoopbackServer``); faults are fields."""

    latency: float = 0.0
    latency_per_token: float = 0.0
    max_inputs: int = 2048
    rate_limit_every: int = 0  # every n-th request answers 429 rate_limit_exceeded
    retry_after: str | None = "1"
    quota_exhausted: bool = False
    error_rate: float = 0.0  # share of requests answered 500/503
    drop_first: int = 0
    ignore_base64: bool = False  # an OpenAI-compatible server that always sends floats
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    azure: bool = False
    max_in_flight: int | None = None  # requests beyond this wait for a slot (server capacity)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._window: deque[tuple[float, int]] = deque()
        self._slots = threading.BoundedSemaphore(self.max_in_flight or 1_000_000)

    def answer(self, request: Request, count: int, roll: float) -> Response:
        deployment = None
        if request.path == "/v1/embeddings" and not self.azure:
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                shown = request.headers.get("authorization", "")[-4:]
                return _error(
                    401,
                    f"Incorrect API key provided: sk-....{shown}. You can find "
                    "your API key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                )
        elif self.azure and (
            match := re.fullmatch(r"/openai/deployments/([^/]+)/embeddings", request.path)
        ):
            deployment = match.group(1)
            if "api-version" not in request.query:
                return _azure_error(404, "404", "Resource not found")
            if not self._azure_authorised(request):
                return _azure_error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key "
                    "or wrong API endpoint. Make sure to provide a valid key for "
                    "an active subscription and use a correct regional API "
                    "endpoint for your resource.",
                )
        elif self.azure and request.path == "/openai/v1/embeddings":
            if not self._azure_authorised(request):
                return _azure_error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint.",
                )
        else:
            return Response(
                404,
                {
                    "error": {
                        "message": "Not found",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        if count <= self.drop_first:
            return Response(drop=True)
        body = request.json()
        model = deployment or body.get("model")
        if self.azure:
            model = {
                "small": "text-embedding-3-small",
                "ada": "text-embedding-ada-002",
                "large": "text-embedding-3-large",
            }.get(model or "", model)
        return self._embed(body, model, count, roll)

    def _azure_authorised(self, request: Request) -> bool:
        return (
            request.headers.get("api-key") == API_KEY
            or request.headers.get("authorization") == f"Bearer {API_KEY}"
        )

    # -- limits and faults -------------------------------------------------------------------

    def _rate_headers(self, tokens: int) -> dict[str, str]:
        rpm, tpm = self.requests_per_minute or 10_000, self.tokens_per_minute or 10_000_000
        with self._lock:
            used_requests = len(self._window)
            used_tokens = sum(t for _, t in self._window)
        return {
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-limit-tokens": str(tpm),
            "x-ratelimit-remaining-requests": str(max(0, rpm - used_requests)),
            "x-ratelimit-remaining-tokens": str(max(0, tpm - used_tokens - tokens)),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "12ms",
        }

    def _over_minute_limit(self, tokens: int) -> float | None:
        """Seconds until the request would fit the RPM/TPM window, or None if it fits now."""
        if not (self.requests_per_minute or self.tokens_per_minute):
            return None
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0][0] <= now - 60:
                self._window.popleft()
            used = sum(t for _, t in self._window)
            too_many = self.requests_per_minute and len(self._window) >= self.requests_per_minute
            too_big = self.tokens_per_minute and used + tokens > self.tokens_per_minute
            if not (too_many or too_big):
                self._window.append((now, tokens))
                return None
            return max(0.001, self._window[0][0] + 60 - now) if self._window else 1.0

    def _embed(self, body: dict[str, Any], model: str | None, count: int, roll: float) -> Response:
        if self.quota_exhausted:
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            seconds = float(self.retry_after or 1)
            return self._rate_limited(seconds, 0, self.retry_after)
        if roll < self.error_rate:
            if roll < self.error_rate / 2:
                return _error(
                    500,
                    "The server had an error processing your request. Sorry about that!",
                    "server_error",
                )
            return Response(503, "Service Unavailable")
        if model not in MODELS:
            if self.azure:
                return _azure_error(
                    404,
                    "DeploymentNotFound",
                    "The API deployment for this "
                    "resource does not exist. If you created the deployment "
                    "within the last 5 minutes, please wait a moment and try "
                    "again.",
                )
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if (
            not isinstance(inputs, list)
            or not inputs
            or any(not isinstance(t, str) or t == "" for t in inputs)
        ):
            return _error(
                400,
                "'$.input' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference.",
                "invalid_request_error",
            )
        if len(inputs) > self.max_inputs:
            if self.azure:
                return _error(
                    400,
                    f"Too many inputs. The max number of inputs is "
                    f"{self.max_inputs}.  We hope to increase the number of inputs "
                    "per request soon. Please contact us through an Azure support "
                    "request at: https://go.microsoft.com/fwlink/?linkid=2213926 for "
                    "further questions.",
                    "invalid_request_error",
                )
            return _error(
                400,
                "'$.input' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference.",
                "invalid_request_error",
            )
        counts = [count_tokens(t) for t in inputs]
        for tokens in counts:
            if tokens > 8192:
                return _error(
                    400,
                    f"This model's maximum context length is 8192 tokens, however "
                    f"you requested {tokens} tokens ({tokens} in your prompt; 0 for the "
                    "completion). Please reduce your prompt; or completion length.",
                    "invalid_request_error",
                )
        total = sum(counts)
        if total > 300_000:
            return _error(
                400,
                f"Requested {total} tokens, max 300000 tokens per request",
                "max_tokens_per_request",
                "max_tokens_per_request",
            )
        dimensions = body.get("dimensions")
        if dimensions is not None and model == "text-embedding-ada-002":
            return _error(
                400, "This model does not support specifying dimensions.", "invalid_request_error"
            )
        wait = self._over_minute_limit(total)
        if wait is not None:
            return self._rate_limited(wait, total, str(max(1, math.ceil(wait))))
        delay = self.latency + self.latency_per_token * total
        if self.max_in_flight:  # hold a slot for the whole service time
            with self._slots:
                time.sleep(delay)
            delay = 0.0
        vectors = [vector_for(model, t, dimensions) for t in inputs]
        as_base64 = body.get("encoding_format") == "base64" and not self.ignore_base64
        data = embedding_items(vectors, as_base64=as_base64)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
        return Response(200, payload, headers=self._rate_headers(total), delay=delay)

    def _rate_limited(self, seconds: float, requested: int, retry_after: str | None) -> Response:
        headers = {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{max(seconds, 0.001):.3f}s",
        }
        if retry_after is not None:
            headers["retry-after"] = retry_after
        if self.azure:
            message = (
                "Requests to the Embeddings_Create Operation under Azure OpenAI API version "
                "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing "
                f"tier. Please retry after {math.ceil(seconds)} seconds."
            )
            return Response(429, {"error": {"code": "429", "message": message}}, headers=headers)
        return _error(
            429,
            "Rate limit reached for text-embedding-3-small in organization "
            f"org-test on tokens per min (TPM): Limit {self.tokens_per_minute or 0}, "
            f"Requested {requested}. Please try again in {seconds:.3f}s.",
            "tokens",
            "rate_limit_exceeded",
            headers=headers,
        )
