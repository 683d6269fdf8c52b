"""A loopback stand-in for the Acme API, for this plugin's tests and embedify's engine tests.

Faults are switched on per server: latency, a share of 503s, 429 storms with ``Retry-After``,
a smaller batch limit than the client believes, malformed answers, dropped connections.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from embedify.testing import FakeService, Request, Response

API_KEY = "acme-test-key"


@dataclass
class AcmeServer(FakeService):
    """Pass it to ``LoopbackServer``; the fields switch faults on."""

    latency: float = 0.0
    max_batch: int = 64
    max_tokens_per_input: int = 512
    error_rate: float = 0.0  # share of requests answered 503
    rate_limit_every: int = 0  # every n-th request gets a 429
    retry_after: str = "0.05"
    malformed: bool = False
    drop_first: int = 0  # drop the connection on the first n requests
    reject_word: str | None = None  # 400 for any batch holding a text with this word

    @property
    def batch_sizes(self) -> list[int]:
        """Inputs per request that the server accepted."""
        return [len(e["body"]["inputs"]) for e in self.log if e["status"] == 200]

    def answer(self, request: Request, count: int, roll: float) -> Response:
        response = self._answer(request, count, roll)
        response.delay = self.latency
        return response

    def _answer(self, request: Request, count: int, roll: float) -> Response:
        if request.path != "/v1/embed":
            return _error(404, "no such route", "not_found")
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid api key", "unauthorized")
        if count <= self.drop_first:
            return Response(drop=True)
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return Response(
                429,
                {"error": {"message": "rate limit exceeded", "code": "rate_limited"}},
                headers={"Retry-After": self.retry_after},
            )
        if roll < self.error_rate:
            return _error(503, "overloaded", "unavailable")
        body = request.json()
        inputs = body["inputs"]
        if body.get("model") not in ("acme-embed-1", "acme-embed-mini"):
            return _error(404, f"model {body.get('model')!r} not found", "model_not_found")
        if len(inputs) > self.max_batch:
            return _error(413, f"at most {self.max_batch} inputs per request", "too_many_inputs")
        for index, text in enumerate(inputs):
            if len(text.split()) > self.max_tokens_per_input:
                return Response(
                    400,
                    {
                        "error": {
                            "message": f"input {index} has over {self.max_tokens_per_input} tokens",
                            "code": "input_too_long",
                            "index": index,
                        }
                    },
                )
        if self.reject_word and any(self.reject_word in text for text in inputs):
            return _error(400, f"inputs may not contain {self.reject_word!r}", "invalid_input")
        dimension = 256 if body["model"] == "acme-embed-1" else 64
        if self.malformed:
            return Response(200, {"embeddings": [[0.0] * dimension]})
        vectors = [vector_for(body["input_type"], text, dimension) for text in inputs]
        return Response(
            200, {"embeddings": vectors, "usage": {"tokens": sum(len(t.split()) for t in inputs)}}
        )


def vector_for(input_type: str, text: str, dimension: int) -> list[float]:
    """The server's deterministic 'embedding' of a text, so tests can check every row."""
    raw = hashlib.shake_256(f"{input_type}\0{text}".encode()).digest(2 * dimension)
    vector = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    return (vector / np.linalg.norm(vector)).tolist()


def _error(status: int, message: str, code: str) -> Response:
    return Response(status, {"error": {"message": message, "code": code}})
