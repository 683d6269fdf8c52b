"""A loopback server speaking OpenAI's embeddings protocol (and Azure OpenAI's routes).

It is what the unmodified ``openai`` SDK expects, modelled on api.openai.com rather than on what
a client happens to handle: ``POST /v1/embeddings`` with a bearer key, the request validation of
the real API (2048 inputs, 8192 tokens per input, 300,000 tokens per request, no empty strings,
no ``dimensions`` for ada-002) with its exact error bodies, float or base64 (little-endian
float32) answers, and:

- rate limits as continuously refilling token buckets, one for requests and one for tokens
  (``requests_per_minute`` / ``tokens_per_minute``; a bucket holds a minute's worth and refills
  at limit/60 per second), charged on admission with the request's input tokens;
- ``x-ratelimit-limit-*``, ``-remaining-*`` and ``-reset-*`` (Go durations: ``6m0s``, ``12ms``,
  ``2.812s``) on every answer, and on a 429 OpenAI's body ("Rate limit reached for ... on tokens
  per min (TPM): Limit L, Used U, Requested R. Please try again in 2.812s. ...") with an integer
  ``Retry-After`` (``retry_after_ms`` adds the SDK's ``retry-after-ms``);
- a latency model: ``latency`` + ``latency_per_token`` x tokens per request, at most
  ``max_in_flight`` requests served at once (the rest wait for a slot);
- switchable faults: a share of 5xx (``error_rate``), 429 storms (``rate_limit_every``), an
  exhausted quota, dropped connections;
- ``self_hosted``: infinity-emb or TEI on a CPU behind ``base_url`` instead: one compute queue
  whose time per request is ``latency`` + ``latency_per_token`` x tokens, served in arrival
  order, that keeps computing a request whose client gave up (time out) as real servers do; any
  key and model name, no rate-limit headers, no per-request token limit.

Azure: ``/openai/deployments/{name}/embeddings?api-version=`` (``api-key`` header or bearer
token; api-version required) and ``/openai/v1/embeddings``, with Azure's error bodies (string
``code``, no ``type``).

Tokens are counted by a simple rule (a word or a punctuation mark is one token), which the
client's estimate does not always bound: that is what exercises the client's handling of
the server's "maximum context length" errors. The rate limiter charges the same count.

To test your own code offline, :func:`serve_fake_openai` serves a fake for a ``with`` block
and gives the URL and key to point a model or the ``openai`` SDK at::

    with serve_fake_openai() as server:
        model = embedify.get_model("openai", base_url=server.base_url, api_key=server.api_key)

Benchmarks need the fake not to be the bottleneck: answers are assembled from per-text encoded
vectors kept in memory (:meth:`FakeOpenAI.precompute` fills them ahead of a timed run), so a
request costs the server little more than parsing its JSON.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedify.testing import FakeService, LoopbackServer, Request, Response

API_KEY = "sk-test-0123456789abcdef"
MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# What the headers advertise when no limit is set: OpenAI's usage tier 5 for embeddings, which
# the jobs of the tests never come near.
DEFAULT_REQUESTS_PER_MINUTE = 10_000
DEFAULT_TOKENS_PER_MINUTE = 10_000_000
_PUNCTUATION = ".,;:!?()[]{}\"'"
_RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"


def count_tokens(text: str) -> int:
    """The server's token count: words plus punctuation marks (cheap, and not what the client's
    byte-based estimate assumes, which is the point)."""
    return len(text.split()) + sum(text.count(mark) for mark in _PUNCTUATION)


def vector_for(model: str, text: str, dimension: int | None = None) -> np.ndarray:
    """The server's deterministic vector for a text (unit length, after ``dimensions``)."""
    size = MODELS.get(model, 64)
    raw = hashlib.shake_256(f"{model}\0{text}".encode()).digest(2 * size)
    vector = np.frombuffer(raw, dtype="<i2")[: dimension or size].astype(np.float32)
    unit: np.ndarray = vector / np.linalg.norm(vector)
    return unit


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it (Go's format, rounded to
    the millisecond): ``0s``, ``12ms``, ``1s``, ``2.812s``, ``6m0s``, ``1h0m0s``."""
    millis = max(0, round(seconds * 1000))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


class TokenBucket:
    """A bucket holding up to ``per_minute`` units that refills continuously at per_minute/60
    per second; starts full. Not thread-safe: the fake holds its lock around it."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` fits (0 now; infinite if it exceeds the capacity)."""
        if amount > self.capacity:
            return math.inf
        return max(0.0, (amount - self.level) / self.rate)

    def until_full(self) -> float:
        return (self.capacity - self.level) / self.rate


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


def _encoded(vector: np.ndarray, as_base64: bool) -> bytes:
    """One ``embedding`` value as JSON bytes: a base64 string or a float list."""
    if as_base64:
        return b'"' + base64.b64encode(vector.astype("<f4").tobytes()) + b'"'
    return json.dumps(vector.tolist()).encode()


@dataclass
class FakeOpenAI(FakeService):
    """Call it with a :class:`Request` (pass it to ``LoopbackServer``); behaviours are fields."""

    latency: float = 0.0  # seconds per request (self_hosted: compute time per request)
    latency_per_token: float = 0.0  # plus this per input token
    max_inputs: int = 2048
    rate_limit_every: int = 0  # every n-th request answers 429 rate_limit_exceeded
    retry_after: str | None = "1"  # the Retry-After of those storm 429s
    quota_exhausted: bool = False
    error_rate: float = 0.0  # share of admitted requests answered 500/503
    drop_first: int = 0
    ignore_base64: bool = False  # an OpenAI-compatible server that always sends floats
    requests_per_minute: int | None = None  # None: tier-5 limits, far above any test's job
    tokens_per_minute: int | None = None
    initial_fill: float = 1.0  # share of each bucket full at start (1: a key unused for a minute)
    retry_after_ms: bool = False  # also send ``retry-after-ms`` on rate-limit 429s
    azure: bool = False
    max_in_flight: int | None = None  # requests beyond this wait for a slot (server capacity)
    self_hosted: bool = False  # infinity-emb / TEI on a CPU: one compute queue, no limits shown
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        now = self.clock()
        self._requests = TokenBucket(self.requests_per_minute or DEFAULT_REQUESTS_PER_MINUTE, now)
        self._tokens = TokenBucket(self.tokens_per_minute or DEFAULT_TOKENS_PER_MINUTE, now)
        self._started = False  # the buckets hold ``initial_fill`` at the first request
        self._slots = threading.BoundedSemaphore(self.max_in_flight or 1_000_000)
        self._queue_free_at = now  # self-hosted: when the compute queue has finished its work
        self._encoded: dict[tuple[str, int | None, bool, str], bytes] = {}
        self._token_counts: dict[str, int] = {}
        self.compute_seconds = 0.0  # self-hosted: work queued, answered or abandoned
        self.inputs_received = 0  # inputs of admitted requests (work the server did)

    # -- the FakeService contract, parsing each body once ------------------------------------

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self._count += 1
            count, roll = self._count, self._random.random()
        body = request.json() if request.body else None
        response = self._answer(request, body, count, roll)
        with self._lock:
            self.log.append(
                {
                    "status": response.status,
                    "path": request.path,
                    "headers": request.headers,
                    "query": request.query,
                    "body": body,
                }
            )
        return response

    def answer(self, request: Request, count: int, roll: float) -> Response:
        return self._answer(request, request.json() if request.body else None, count, roll)

    def precompute(self, texts: Iterable[str], model: str, dimensions: int | None = None) -> None:
        """Encode the vectors of ``texts`` and count their tokens now, so that a timed run only
        assembles answers."""
        for text in texts:
            self._embedding(model, dimensions, True, text)
            self._tokens_of(text)

    def _tokens_of(self, text: str) -> int:
        found = self._token_counts.get(text)
        if found is None:
            found = self._token_counts[text] = count_tokens(text)
        return found

    def _embedding(self, model: str, dimensions: int | None, as_base64: bool, text: str) -> bytes:
        key = (model, dimensions, as_base64, text)
        found = self._encoded.get(key)
        if found is None:
            found = self._encoded[key] = _encoded(vector_for(model, text, dimensions), as_base64)
        return found

    # -- routing and authentication ----------------------------------------------------------

    def _answer(self, request: Request, body: Any, count: int, roll: float) -> Response:
        deployment = None
        if request.path == "/v1/embeddings" and not self.azure:
            if not self.self_hosted and request.headers.get("authorization") != (
                f"Bearer {API_KEY}"
            ):
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
        model = deployment or (body or {}).get("model")
        if self.azure:
            model = {
                "small": "text-embedding-3-small",
                "ada": "text-embedding-ada-002",
                "large": "text-embedding-3-large",
            }.get(model or "", model)
        return self._embed(body or {}, model, count, roll)

    def _azure_authorised(self, request: Request) -> bool:
        return (
            request.headers.get("api-key") == API_KEY
            or request.headers.get("authorization") == f"Bearer {API_KEY}"
        )

    # -- validation, limits, faults and the answer -------------------------------------------

    def _embed(self, body: dict[str, Any], model: str | None, count: int, roll: float) -> Response:
        if self.quota_exhausted:
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return self._storm_rate_limited()
        if model not in MODELS and not self.self_hosted:
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
        counts = [self._tokens_of(t) for t in inputs]
        total = sum(counts)
        if not self.self_hosted:
            for tokens in counts:
                if tokens > 8192:
                    return _error(
                        400,
                        f"This model's maximum context length is 8192 tokens, however "
                        f"you requested {tokens} tokens ({tokens} in your prompt; 0 for the "
                        "completion). Please reduce your prompt; or completion length.",
                        "invalid_request_error",
                    )
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
        assert model is not None
        if self.self_hosted:
            headers: dict[str, str] = {}
            delay = self._queue(total)
        else:
            refused, headers = self._admit(model, total)
            if refused is not None:
                return refused
            delay = self.latency + self.latency_per_token * total
        with self._lock:
            self.inputs_received += len(inputs)
        if roll < self.error_rate:
            if roll < self.error_rate / 2:
                return _error(
                    500,
                    "The server had an error processing your request. Sorry about that!",
                    "server_error",
                    headers=headers,
                )
            return Response(503, "Service Unavailable", headers=headers)
        if self.max_in_flight:  # hold a slot for the whole service time
            with self._slots:
                time.sleep(delay)
            delay = 0.0
        as_base64 = body.get("encoding_format") == "base64" and not self.ignore_base64
        items = b",".join(
            b'{"object":"embedding","index":%d,"embedding":%s}'
            % (index, self._embedding(model, dimensions, as_base64, text))
            for index, text in enumerate(inputs)
        )
        payload = b'{"object":"list","data":[%s],"model":%s,"usage":%s}' % (
            items,
            json.dumps(model).encode(),
            json.dumps({"prompt_tokens": total, "total_tokens": total}).encode(),
        )
        headers = {"content-type": "application/json", **headers}
        return Response(200, payload, headers=headers, delay=delay)

    def _queue(self, tokens: int) -> float:
        """Self-hosted: put the request's work at the end of the compute queue; return how long
        until it is done. The work stays queued if the client stops waiting."""
        work = self.latency + self.latency_per_token * tokens
        with self._lock:
            now = self.clock()
            self._queue_free_at = max(self._queue_free_at, now) + work
            self.compute_seconds += work
            return self._queue_free_at - now

    def _refill(self) -> None:
        """Bring both buckets to now (the first request finds them ``initial_fill`` full)."""
        now = self.clock()
        for bucket in (self._requests, self._tokens):
            if not self._started:
                bucket.level = bucket.capacity * self.initial_fill
                bucket.updated = now
            bucket.refill(now)
        self._started = True

    def _admit(self, model: str, tokens: int) -> tuple[Response | None, dict[str, str]]:
        """Charge the request to both buckets, or refuse it with OpenAI's 429; either way return
        the ``x-ratelimit-*`` headers of the buckets after the decision."""
        with self._lock:
            self._refill()
            refusal = next(
                (
                    (kind, bucket, amount, bucket.wait_for(amount))
                    for kind, bucket, amount in (
                        ("requests", self._requests, 1),
                        ("tokens", self._tokens, tokens),
                    )
                    if bucket.wait_for(amount) > 0
                ),
                None,
            )
            if refusal is None:
                self._requests.level -= 1
                self._tokens.level -= tokens
            headers = self._limit_headers()
        if refusal is None:
            return None, headers
        kind, bucket, amount, wait = refusal
        return self._rate_limited(model, kind, bucket, amount, wait, headers), headers

    def _limit_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(int(self._requests.capacity)),
            "x-ratelimit-limit-tokens": str(int(self._tokens.capacity)),
            "x-ratelimit-remaining-requests": str(max(0, int(self._requests.level))),
            "x-ratelimit-remaining-tokens": str(max(0, int(self._tokens.level))),
            "x-ratelimit-reset-requests": go_duration(self._requests.until_full()),
            "x-ratelimit-reset-tokens": go_duration(self._tokens.until_full()),
        }

    def _rate_limited(
        self,
        model: str,
        kind: str,
        bucket: TokenBucket,
        requested: int,
        wait: float,
        limit_headers: dict[str, str],
    ) -> Response:
        """OpenAI's 429 for a bucket that cannot cover the request now."""
        unit = "tokens per min (TPM)" if kind == "tokens" else "requests per min (RPM)"
        limit = int(bucket.capacity)
        if math.isinf(wait):
            message = (
                f"Request too large for {model} in organization org-test on {unit}: "
                f"Limit {limit}, Requested {requested}. The input or output tokens must be "
                f"reduced in order to run successfully. Visit {_RATE_LIMITS_URL} to learn more."
            )
            return _error(429, message, kind, "rate_limit_exceeded", headers=limit_headers)
        used = limit - max(0, int(bucket.level))
        message = (
            f"Rate limit reached for {model} in organization org-test on {unit}: "
            f"Limit {limit}, Used {used}, Requested {requested}. Please try again in "
            f"{go_duration(wait)}. Visit {_RATE_LIMITS_URL} to learn more."
        )
        headers = {**limit_headers, "retry-after": str(max(1, math.ceil(wait)))}
        if self.retry_after_ms:
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return _error(429, message, kind, "rate_limit_exceeded", headers=headers)

    def _storm_rate_limited(self) -> Response:
        """The scripted 429 of ``rate_limit_every`` (independent of the buckets)."""
        seconds = float(self.retry_after or 1)
        headers = {
            **({} if self.self_hosted else self._limit_headers_now()),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": go_duration(seconds),
        }
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        if self.azure:
            message = (
                "Requests to the Embeddings_Create Operation under Azure OpenAI API version "
                "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing "
                f"tier. Please retry after {math.ceil(seconds)} seconds."
            )
            return Response(429, {"error": {"code": "429", "message": message}}, headers=headers)
        return _error(
            429,
            "Rate limit reached for text-embedding-3-small in organization org-test on "
            f"requests per min (RPM): Limit {int(self._requests.capacity)}, Used "
            f"{int(self._requests.capacity)}, Requested 1. Please try again in "
            f"{go_duration(seconds)}. Visit {_RATE_LIMITS_URL} to learn more.",
            "requests",
            "rate_limit_exceeded",
            headers=headers,
        )

    def _limit_headers_now(self) -> dict[str, str]:
        with self._lock:
            self._refill()
            return self._limit_headers()


@dataclass(frozen=True)
class FakeOpenAIServer:
    """A :class:`FakeOpenAI` being served: what a client needs to reach it, and the fake,
    whose ``log`` holds every exchange (status, path, headers, body)."""

    base_url: str  # ``http://127.0.0.1:PORT/v1``, for embedify's ``base_url`` and the SDK's
    api_key: str  # the only key the fake accepts, as the real API accepts only yours
    fake: FakeOpenAI


@contextlib.contextmanager
def serve_fake_openai(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAIServer]:
    """Serve ``fake`` (default: ``FakeOpenAI()``, OpenAI's limits and answers with no faults)
    on 127.0.0.1 at a free port for the ``with`` block; it stops when the block ends."""
    served = fake if fake is not None else FakeOpenAI()
    with LoopbackServer(served) as server:
        yield FakeOpenAIServer(f"{server.url}/v1", API_KEY, served)
