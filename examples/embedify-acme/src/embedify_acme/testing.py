"""A loopback server speaking Acme's ``POST /v1/embed`` (the facts: see
:mod:`embedify_acme.model`), for this plugin's tests, embedify's own and a notebook.

It checks the bearer key, validates the body, enforces the per-request and per-input limits
with Acme's error codes, answers ``dimensions`` only on acme-embed-1, and reports ``usage``.
Tokens are whitespace-separated words. Vectors are deterministic per (input type, text) and unit
length; a shorter one is the longer one's start, renormalised. ``max_tokens_per_input``
overrides the documented 512, so a test can make the server refuse an input that the client's
count lets through. Rate limits, overloads and dropped connections are the conformance kit's to
inject.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from embedify.testing import FakeService, Request, Response

API_KEY = "acme-test-key"
MODELS = {"acme-embed-1": (256, (64, 128, 256)), "acme-embed-mini": (64, ())}
MAX_INPUTS = 64
MAX_TOKENS_PER_REQUEST = 8192
MAX_TOKENS_PER_INPUT = 512


def tokens_of(text: str) -> int:
    return len(text.split())


def vector_for(input_type: str, text: str, dimension: int) -> list[float]:
    """The fake's unit-length vector for ``text``, so tests can check every row."""
    raw = hashlib.shake_256(f"{input_type}\0{text}".encode()).digest(2 * dimension)
    vector = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    rows: list[float] = (vector / np.linalg.norm(vector)).tolist()
    return rows


def acme_error(status: int, code: str, message: str, **details: object) -> Response:
    return Response(status, {"error": {"message": message, "code": code, **details}})


@dataclass
class FakeAcme(FakeService):
    max_tokens_per_input: int = MAX_TOKENS_PER_INPUT

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.method != "POST" or request.path != "/v1/embed":
            return acme_error(404, "not_found", f"no route {request.method} {request.path}")
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return acme_error(401, "unauthorized", "invalid api key")
        body = request.json()
        model, inputs, input_type = body.get("model"), body.get("inputs"), body.get("input_type")
        if model not in MODELS:
            return acme_error(404, "model_not_found", f"model {model!r} not found")
        if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
            return acme_error(400, "invalid_input", "inputs must be a list of strings")
        if input_type not in ("query", "document"):
            return acme_error(400, "invalid_input", "input_type must be 'query' or 'document'")
        native, offered = MODELS[model]
        dimension = body.get("dimensions", native)
        if "dimensions" in body and dimension not in offered:
            return acme_error(400, "invalid_input", f"{model} offers dimensions {offered}")
        if len(inputs) > MAX_INPUTS:
            return acme_error(413, "too_many_inputs", f"at most {MAX_INPUTS} inputs")
        tokens = [tokens_of(text) for text in inputs]
        limit = self.max_tokens_per_input
        too_long = next((index for index, n in enumerate(tokens) if n > limit), None)
        if too_long is not None:
            message = f"input {too_long} has over {limit} tokens"
            return acme_error(400, "input_too_long", message, index=too_long)
        if sum(tokens) > MAX_TOKENS_PER_REQUEST:
            return acme_error(413, "too_many_tokens", f"at most {MAX_TOKENS_PER_REQUEST} tokens")
        vectors = [vector_for(input_type, text, dimension) for text in inputs]
        return Response(200, {"embeddings": vectors, "usage": {"tokens": sum(tokens)}})
