"""A small embeddings API, server and client, for testing the engine over real HTTP.

:class:`EmbeddingServer` is a :class:`FakeService` speaking a minimal protocol
(``POST /embed`` with ``{"model", "inputs", "role"}`` and a bearer key; answers
``{"embeddings": [[...]]}``) with the faults an engine must survive, each a field: latency that
grows with request size, a limit on requests served at once, rate limits enforced as
continuously refilling token buckets announced in ``x-ratelimit-*`` headers on every answer
(as api.openai.com does), 429 storms, 5xx, 413, over-long inputs, dropped connections, bad
keys and an exhausted quota. :class:`HttpFakeModel` is a provider for it written the way
docs/plugins.md says, on the standard library only (no HTTP client dependency in the core).

Tokens are words, on the server; the client estimates them as providers without a tokenizer
do, which over-counts English.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np

import embedify
from embedify import errors
from embedify.http import redirect_refusal
from embedify.responses import vector_matrix
from embedify.testing.loopback import FakeService, Request, Response

API_KEY = "fake-http-key"
DIMENSION = 32


def vector_for(role: str, text: str, dimension: int = DIMENSION) -> np.ndarray[Any, Any]:
    """The server's deterministic unit vector for ``text`` embedded for ``role``."""
    raw = hashlib.shake_256(f"{role}\0{text}".encode()).digest(2 * dimension)
    vector = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    result: np.ndarray[Any, Any] = vector / np.linalg.norm(vector)
    return result


def server_tokens(text: str) -> int:
    return len(text.split())


class _Bucket:
    """The server's continuously refilling bucket: ``per_minute`` refill, holding
    ``seconds`` of it."""

    def __init__(self, per_minute: float, seconds: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = self.level = self.rate * seconds
        self.updated = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.rate)


@dataclass
class EmbeddingServer(FakeService):
    """Pass it to ``LoopbackServer``; each field switches a behaviour on."""

    latency: float = 0.0  # seconds per request
    latency_per_token: float = 0.0  # plus this per token: bigger requests take longer
    capacity: int = 0  # requests served at once (others queue); 0: no limit
    requests_per_minute: float = 0.0  # token-bucket limits with x-ratelimit-* headers; 0: none
    tokens_per_minute: float = 0.0
    bucket_seconds: float = 60.0  # what a bucket holds, in seconds of refill
    max_batch: int = 256  # more inputs: 413
    max_tokens_per_input: int = 512  # longer input: 400 naming its index
    rate_limit_every: int = 0  # every n-th request gets a 429
    retry_after: str | None = "0.05"  # Retry-After of those 429s
    error_rate: float = 0.0  # share of requests answered 503
    drop_first: int = 0  # the first n requests lose their connection
    reject_word: str | None = None  # 400 for a batch holding a text with this word
    quota_exhausted: bool = False
    batch_sizes: list[int] = field(default_factory=list)  # inputs of each 200 answer

    def __post_init__(self) -> None:
        super().__post_init__()
        self._serving = threading.BoundedSemaphore(self.capacity) if self.capacity else None
        self._buckets = {
            kind: _Bucket(limit, self.bucket_seconds)
            for kind, limit in (
                ("requests", self.requests_per_minute),
                ("tokens", self.tokens_per_minute),
            )
            if limit
        }

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if self._serving is None:
            return self._answer(request, count, roll)
        with self._serving:
            return self._answer(request, count, roll)

    def _answer(self, request: Request, count: int, roll: float) -> Response:
        if request.path != "/embed":
            return _error(404, f"no route {request.path}")
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid api key")
        if count <= self.drop_first:
            return Response(drop=True)
        body = request.json()
        inputs: list[str] = body["inputs"]
        tokens = sum(server_tokens(text) for text in inputs)
        if self.quota_exhausted:
            return _error(429, "you exceeded your quota", code="insufficient_quota")
        limited, headers = self._spend(tokens)
        if limited is not None:
            return _error(429, "rate limit reached", headers={**headers, **limited})
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            extra = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return _error(429, "rate limit reached", headers={**headers, **extra})
        if roll < self.error_rate:
            return _error(503, "overloaded", headers=headers)
        if len(inputs) > self.max_batch:
            return _error(413, f"at most {self.max_batch} inputs per request", headers=headers)
        for index, text in enumerate(inputs):
            if server_tokens(text) > self.max_tokens_per_input:
                return _error(400, "input too long", code="input_too_long", index=index)
        if self.reject_word and any(self.reject_word in text for text in inputs):
            return _error(400, f"inputs may not contain {self.reject_word!r}")
        time.sleep(self.latency + self.latency_per_token * tokens)
        with self._lock:
            self.batch_sizes.append(len(inputs))
        vectors = [vector_for(body["role"], text).tolist() for text in inputs]
        return Response(200, {"embeddings": vectors, "usage": {"tokens": tokens}}, headers=headers)

    def _spend(self, tokens: int) -> tuple[dict[str, str] | None, dict[str, str]]:
        """Take one request and ``tokens`` from the buckets: (429 headers or None, headers)."""
        if not self._buckets:
            return None, {}
        with self._lock:
            cost = {"requests": 1.0, "tokens": float(tokens)}
            for bucket in self._buckets.values():
                bucket.refill()
            wait = max(b.wait_for(cost[kind]) for kind, b in self._buckets.items())
            if wait == 0:
                for kind, bucket in self._buckets.items():
                    bucket.level -= cost[kind]
            headers = {}
            for kind, bucket in self._buckets.items():
                headers[f"x-ratelimit-limit-{kind}"] = str(int(bucket.limit))
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(bucket.level)))
                reset = (bucket.capacity - bucket.level) / bucket.rate
                headers[f"x-ratelimit-reset-{kind}"] = f"{reset:.3f}s"
        if wait > 0:
            return {"retry-after-ms": str(int(wait * 1000) + 1)}, headers
        return None, headers


def _error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    index: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        status,
        {"error": {"message": message, "code": code, "index": index}},
        headers=headers or {},
    )


class HttpFakeModel(embedify.EmbeddingModel):
    """The client of :class:`EmbeddingServer`: ``HttpFakeModel(base_url=server.url)``."""

    provider = "http-fake"
    default_model_id = "fake-embed"
    options_class = embedify.RemoteOptions
    options: embedify.RemoteOptions
    capabilities = embedify.Capabilities(
        dimension=DIMENSION,
        normalized=True,
        dimensions_mode="matryoshka",
        roles={"document": "role=document", "query": "role=query"},
        limits=embedify.Limits(
            max_inputs_per_request=256, max_tokens_per_request=8192, max_tokens_per_input=512
        ),
    )

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        options.setdefault("api_key", API_KEY)
        super().__init__(model_id, **options)
        if not self.options.base_url:
            raise errors.ConfigurationError("HttpFakeModel needs base_url=server.url")

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        body = json.dumps({"model": self.model_id, "inputs": texts, "role": role}).encode()
        status, headers, payload = await self._post("/embed", body)
        embedify.observe_rate_limit_headers(headers)
        if 300 <= status < 400:  # never followed: the request carries the key
            location = next((v for k, v in headers.items() if k.lower() == "location"), None)
            raise redirect_refusal(status, urljoin(self.options.base_url or "", "/embed"), location)
        if status != 200:
            raise _translate(status, headers, payload)
        answer = json.loads(payload)
        if "usage" in answer:
            embedify.observe_usage(answer["usage"]["tokens"])
        return vector_matrix(answer["embeddings"], len(texts), source=repr(self))

    async def _post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self.options.base_url and self.options.api_key
        url = urlsplit(self.options.base_url)
        host, port = url.hostname or "", url.port or 80
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.options.timeout
            )
        except socket.gaierror as error:
            raise errors.ConnectionFailedError(
                f"cannot resolve {host}: {error.strerror}", host=host, name_resolution=True
            ) from None
        except (OSError, asyncio.TimeoutError) as error:
            raise errors.ConnectionFailedError(
                f"cannot connect to {host}:{port}: {type(error).__name__}", host=host
            ) from None
        try:
            key = self.options.api_key.get_secret_value()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
            response = await asyncio.wait_for(reader.read(), self.options.timeout)
        except asyncio.TimeoutError:
            raise errors.RequestTimeoutError(f"{host}:{port} did not answer in time") from None
        except OSError as error:
            raise errors.ConnectionFailedError(
                f"connection to {host}:{port} failed: {type(error).__name__}", host=host
            ) from None
        finally:
            writer.close()
        if not response:
            raise errors.ConnectionFailedError(f"{host}:{port} closed the connection", host=host)
        header_block, _, payload = response.partition(b"\r\n\r\n")
        status_line, *lines = header_block.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        return int(status_line.split()[1]), headers, payload


def _translate(status: int, headers: dict[str, str], payload: bytes) -> errors.ProviderError:
    try:
        error = json.loads(payload)["error"]
        message, code, index = str(error["message"]), error.get("code"), error.get("index")
    except (ValueError, KeyError, TypeError):
        message, code, index = payload[:200].decode(errors="replace"), None, None
    text = f"{status}: {message}"
    if code == "insufficient_quota":
        return errors.QuotaExceededError(text, status=status)
    if code == "input_too_long":
        return errors.InputTooLongError(text, status=status, index=index)
    retry_after = embedify.retry_after_from_headers(headers)
    return errors.error_for_status(status, text, retry_after=retry_after)
