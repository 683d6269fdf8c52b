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

The Batch API (:class:`FakeBatches`, on by default): Files (``POST /v1/files`` multipart with
purpose ``batch``, ``GET /v1/files/{id}/content``) and Batches (``POST /v1/batches``, ``GET
/v1/batches/{id}``, ``GET /v1/batches``, ``POST /v1/batches/{id}/cancel``), modelled on
OpenAI's API reference: see its docstring.

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
import email.policy
import hashlib
import itertools
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
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
    batches: FakeBatches = field(default_factory=lambda: FakeBatches())

    def __post_init__(self) -> None:
        super().__post_init__()
        self.batches.embed_line = self._embed_line
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
        if not self.azure and request.path.startswith(("/v1/files", "/v1/batches")):
            response = self.batches(request)
            self.record(request, response, None)  # multipart uploads are not JSON
            return response
        with self._lock:
            self._count += 1
            count, roll = self._count, self._random.random()
        body = request.json() if request.body else None
        response = self._answer(request, body, count, roll)
        self.record(request, response, body)
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

    def _embed_line(self, body: dict[str, Any]) -> Response:
        """One request of a batch: the online endpoint's validation and answer, without its rate
        limits, faults or latency (a batch has its own limits)."""
        return self._embed(body, body.get("model"), 0, 1.0, in_batch=True)

    def _embed(
        self,
        body: dict[str, Any],
        model: str | None,
        count: int,
        roll: float,
        *,
        in_batch: bool = False,
    ) -> Response:
        if self.quota_exhausted and not in_batch:
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if self.rate_limit_every and count % self.rate_limit_every == 0 and not in_batch:
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
        if in_batch:
            headers: dict[str, str] = {}
            delay = 0.0
        elif self.self_hosted:
            headers = {}
            delay = self._queue(total)
        else:
            refused, headers = self._admit(model, total)
            if refused is not None:
                return refused
            delay = self.latency + self.latency_per_token * total
        with self._lock:
            self.inputs_received += len(inputs)
        if not in_batch and roll < self.error_rate:
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


#: A batch's states, in order, when nothing goes wrong.
BATCH_FLOW = ("validating", "in_progress", "finalizing", "completed")
_BATCH_ENDPOINTS = ("/v1/embeddings", "/v1/chat/completions", "/v1/completions", "/v1/responses")
PAUSE_STAGES = ("upload", "create", "poll", "download")


def _multipart(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (file name, bytes)."""
    header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(header + request.body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


@dataclass
class FakeBatches:
    """OpenAI's Files and Batches for ``/v1/embeddings``, as its API reference describes them.

    A batch goes validating -> in_progress -> finalizing -> completed, one state per
    :meth:`advance` (and per ``GET /v1/batches/{id}`` while ``advance_on_poll``), so tests
    decide when time passes. Validation checks each line (JSON, ``custom_id`` unique, ``POST``
    to the batch's endpoint, one model) and the limits (requests per file, inputs per batch);
    problems make the batch ``failed`` with ``errors.data`` naming each line. Each request is
    answered as the online endpoint answers it (its 400s land in the error file); the output
    file's lines come shuffled. Faults: ``expire`` (the first n batches expire with half their
    requests done: the rest are ``batch_expired`` in the error file), ``fail`` (the first n
    batches fail, OpenAI's enqueued-token limit), ``fail_once`` (these custom ids fail with a
    500 the first time they run), ``wrong_width`` (these custom ids' first answer is a 200
    whose vectors are one dimension short, as a misbehaving server's). ``pause_at`` holds the
    answer to the first request of a stage (``upload``, ``create``, ``poll``: a retrieve of a
    batch in progress, ``download``) after the server did the work, sets ``paused`` and waits
    for :meth:`release`: a test kills its client there. ``created`` counts the batches made.
    """

    max_requests_per_file: int = 50_000
    max_file_bytes: int = 200 * 1_000_000
    max_batch_inputs: int = 50_000
    advance_on_poll: bool = True
    expire: int = 0
    fail: int = 0
    fail_once: frozenset[str] = frozenset()
    wrong_width: frozenset[str] = frozenset()
    pause_at: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._random = random.Random(self.seed)
        self._ids = itertools.count(1)
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # id -> the batch object, as served
        self._failed_once: set[str] = set()
        self._narrowed: set[str] = set()  # wrong_width ids already answered short
        self._held: set[str] = set()
        self.paused = threading.Event()
        self._release = threading.Event()
        #: Answers one request of a batch (set by :class:`FakeOpenAI`: its online answer).
        self.embed_line: Callable[[dict[str, Any]], Response] = lambda body: Response(500)

    @property
    def created(self) -> int:
        return len(self.batches)

    def release(self) -> None:
        """Let a held answer go (to a client that is usually dead by then)."""
        self._release.set()

    # -- routing -----------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        method, path = request.method, request.path
        with self._lock:
            if method == "POST" and path == "/v1/files":
                answer, stage = self._upload(request), "upload"
            elif method == "GET" and (found := re.fullmatch(r"/v1/files/([^/]+)/content", path)):
                answer, stage = self._content(found.group(1)), "download"
            elif method == "POST" and path == "/v1/batches":
                answer, stage = self._create(request.json() or {}), "create"
            elif method == "GET" and path == "/v1/batches":
                answer, stage = self._list(request.query), ""
            elif method == "GET" and (found := re.fullmatch(r"/v1/batches/([^/]+)", path)):
                answer, stage = self._retrieve(found.group(1)), "poll"
            elif method == "POST" and (found := re.fullmatch(r"/v1/batches/([^/]+)/cancel", path)):
                answer, stage = self._cancel(found.group(1)), ""
            else:
                return _error(404, f"Invalid URL ({method} {path})", "invalid_request_error")
            if stage == "poll" and (answer.body or {}).get("status") != "in_progress":
                stage = ""  # "mid-poll" is a batch in progress
            hold = stage == self.pause_at and stage not in self._held and answer.status == 200
            if hold:
                self._held.add(stage)
        if hold:
            self.paused.set()
            self._release.wait(timeout=60)
        return answer

    def _not_found(self, kind: str, name: str) -> Response:
        return _error(404, f"No such {kind}: '{name}'", "invalid_request_error")

    # -- files -------------------------------------------------------------------------------

    def _upload(self, request: Request) -> Response:
        fields = _multipart(request)
        if "file" not in fields or "purpose" not in fields:
            return _error(400, "Missing 'file' or 'purpose' in the form.", "invalid_request_error")
        filename, content = fields["file"]
        purpose = fields["purpose"][1].decode()
        if len(content) > self.max_file_bytes:
            return _error(
                400,
                f"File is too large: {len(content)} bytes, the limit for purpose '{purpose}' is "
                f"{self.max_file_bytes} bytes.",
                "invalid_request_error",
            )
        return Response(200, self._store(filename or "upload.jsonl", content, purpose))

    def _store(self, filename: str, content: bytes, purpose: str) -> dict[str, Any]:
        file_id = f"file-{next(self._ids):06d}"
        self.contents[file_id] = content
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        return self.files[file_id]

    def _content(self, file_id: str) -> Response:
        if file_id not in self.contents:
            return self._not_found("File", file_id)
        return Response(200, self.contents[file_id])

    # -- batches -----------------------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> Response:
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "completion_window must be '24h'.", "invalid_request_error")
        if endpoint not in _BATCH_ENDPOINTS:
            return _error(400, f"Unsupported endpoint {endpoint!r}.", "invalid_request_error")
        if file_id not in self.files:
            return self._not_found("File", str(file_id))
        batch_id = f"batch_{next(self._ids):06d}"
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "expires_at": int(time.time()) + 86_400,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        return Response(200, self.batches[batch_id])

    def _retrieve(self, batch_id: str) -> Response:
        if batch_id not in self.batches:
            return self._not_found("batch", batch_id)
        if self.advance_on_poll:
            self.advance(batch_id)
        return Response(200, self.batches[batch_id])

    def _list(self, query: dict[str, str]) -> Response:
        newest_first = list(reversed(self.batches.values()))
        if "after" in query:
            ids = [batch["id"] for batch in newest_first]
            start = ids.index(query["after"]) + 1 if query["after"] in ids else len(ids)
            newest_first = newest_first[start:]
        limit = int(query.get("limit", 20))
        page = newest_first[:limit]
        return Response(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(newest_first) > limit,
            },
        )

    def _cancel(self, batch_id: str) -> Response:
        batch = self.batches.get(batch_id)
        if batch is None:
            return self._not_found("batch", batch_id)
        if batch["status"] not in BATCH_FLOW[:3]:
            return _error(
                409,
                f"Cannot cancel a batch with status '{batch['status']}'.",
                "invalid_request_error",
            )
        self._stamp(batch, "cancelling")
        return Response(200, batch)

    # -- time --------------------------------------------------------------------------------

    def advance(self, batch_id: str | None = None) -> None:
        """Move one batch (every unfinished one when ``None``) to its next state."""
        with self._lock:
            for batch in [self.batches[batch_id]] if batch_id else list(self.batches.values()):
                self._step(batch)

    def _stamp(self, batch: dict[str, Any], status: str) -> None:
        batch["status"] = status
        batch[f"{status}_at"] = int(time.time())

    def _step(self, batch: dict[str, Any]) -> None:
        status = batch["status"]
        number = int(batch["id"].removeprefix("batch_"))
        order = sorted(int(i.removeprefix("batch_")) for i in self.batches).index(number)
        if status == "cancelling":
            self._stamp(batch, "cancelled")
        elif status == "validating":
            problems = self._validate(self.contents[batch["input_file_id"]], batch["endpoint"])
            if not problems and order < self.fail:
                problems = [
                    (
                        None,
                        "token_limit_exceeded",
                        "Enqueued token limit reached for text-embedding-3-small in "
                        "organization org-test. Limit: 3,000,000 enqueued tokens. Please "
                        "try again once some in_progress batches have been completed.",
                    )
                ]
            if problems:
                batch["errors"] = {
                    "object": "list",
                    "data": [
                        {"code": code, "message": message, "param": None, "line": line}
                        for line, code, message in problems
                    ],
                }
                self._stamp(batch, "failed")
            else:
                lines = self.contents[batch["input_file_id"]].splitlines()
                batch["request_counts"]["total"] = sum(1 for line in lines if line.strip())
                self._stamp(batch, "in_progress")
        elif status == "in_progress":
            self._run(batch, expire=order < self.expire)
        elif status == "finalizing":
            self._stamp(batch, "completed")

    def _validate(self, content: bytes, endpoint: str) -> list[tuple[int | None, str, str]]:
        """Problems of an input file, as ``(line, code, message)``."""
        problems: list[tuple[int | None, str, str]] = []
        seen: set[str] = set()
        models: set[str] = set()
        requests = inputs = 0
        for number, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            requests += 1
            try:
                line = json.loads(raw)
                custom_id, body = line["custom_id"], line["body"]
                assert isinstance(custom_id, str) and isinstance(body, dict)
            except (ValueError, KeyError, TypeError, AssertionError):
                problems.append(
                    (
                        number,
                        "invalid_json_line",
                        "This line is not a JSON object with a string custom_id and a body object.",
                    )
                )
                continue
            if custom_id in seen:
                problems.append(
                    (
                        number,
                        "duplicate_custom_id",
                        f"custom_id {custom_id!r} is used by an earlier request; each "
                        "request of a batch needs its own.",
                    )
                )
            if line.get("method") != "POST" or line.get("url") != endpoint:
                problems.append(
                    (
                        number,
                        "invalid_url",
                        f"Each request must be a POST to the batch's endpoint {endpoint}.",
                    )
                )
            seen.add(custom_id)
            models.add(str(body.get("model")))
            given = body.get("input")
            inputs += len(given) if isinstance(given, list) else 1
            if len(models) > 1:
                problems.append(
                    (number, "mismatched_model", "All requests of a batch must use the same model.")
                )
        if requests > self.max_requests_per_file:
            problems.append(
                (
                    None,
                    "too_many_requests",
                    f"The file holds {requests} requests; a batch holds at most "
                    f"{self.max_requests_per_file}.",
                )
            )
        if endpoint == "/v1/embeddings" and inputs > self.max_batch_inputs:
            problems.append(
                (
                    None,
                    "too_many_inputs",
                    f"The batch holds {inputs} embedding inputs; an embeddings batch "
                    f"holds at most {self.max_batch_inputs}.",
                )
            )
        if requests == 0:
            problems.append((None, "empty_file", "The input file holds no request."))
        return problems

    def _run(self, batch: dict[str, Any], *, expire: bool) -> None:
        """Answer the batch's requests (half of them when it expires) into its files."""
        lines = [
            json.loads(raw)
            for raw in self.contents[batch["input_file_id"]].splitlines()
            if raw.strip()
        ]
        done = lines[: len(lines) // 2] if expire else lines
        outputs: list[bytes] = []
        failures: list[bytes] = []
        for line in done:
            custom_id = line["custom_id"]
            if custom_id in self.fail_once and custom_id not in self._failed_once:
                self._failed_once.add(custom_id)
                status, body = (
                    500,
                    {
                        "error": {
                            "message": "The server had an error processing your request.",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            else:
                answer = self.embed_line(line["body"])
                status = answer.status
                body = json.loads(answer.body) if isinstance(answer.body, bytes) else answer.body
                if status == 200 and custom_id in self.wrong_width - self._narrowed:
                    self._narrowed.add(custom_id)
                    for item in body["data"]:
                        item["embedding"] = _one_short(item["embedding"])
            result = {
                "id": f"batch_req_{next(self._ids):06d}",
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": "req_test", "body": body},
                "error": None,
            }
            (outputs if status == 200 else failures).append(json.dumps(result).encode())
        for line in lines[len(done) :]:
            failures.append(
                json.dumps(
                    {
                        "id": f"batch_req_{next(self._ids):06d}",
                        "custom_id": line["custom_id"],
                        "response": None,
                        "error": {
                            "code": "batch_expired",
                            "message": "This request could not be "
                            "executed before the completion window expired.",
                        },
                    }
                ).encode()
            )
        self._random.shuffle(outputs)
        for name, found in (("output_file_id", outputs), ("error_file_id", failures)):
            if found:
                stored = self._store(
                    f"{batch['id']}_{name}.jsonl", b"\n".join(found) + b"\n", "batch_output"
                )
                batch[name] = stored["id"]
        batch["request_counts"].update(completed=len(outputs), failed=len(failures))
        self._stamp(batch, "expired" if expire else "finalizing")


def _one_short(embedding: str | list[float]) -> str | list[float]:
    """An answer's vector (floats, or base64 little-endian float32) without its last value."""
    if isinstance(embedding, list):
        return embedding[:-1]
    return base64.b64encode(base64.b64decode(embedding)[:-4]).decode()


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
