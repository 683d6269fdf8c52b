"""A loopback server speaking Mistral's ``POST /v1/embeddings`` (facts and sources: see
:mod:`embedify_mistral.model`).

It checks the bearer key (401 ``{"message": "Unauthorized", "request_id": ...}``), validates the
body as Mistral's FastAPI does (422 ``{"detail": [{"loc", "msg", "type"}]}``), answers an unknown
model with 400 ``invalid_model``, enforces 128 inputs and 16384 tokens per request (400, code
3210, Mistral's messages) and 8192 tokens per input (400; that wording is not documented), and
``output_dimension`` and a quantized ``output_dtype`` (int8/uint8: 256 steps over [-1, 1];
binary/ubinary: sign bits) only on codestral-embed (at most 3072; mistral-embed: 400). Answers are
OpenAI-shaped ``data`` (floats or base64), shuffled so that clients must order by ``index``,
with ``usage`` and the ``x-ratelimit-*-minute`` headers Mistral sends. ``rate_limit_every``
makes every n-th request a 429 ``rate_limited`` (code 1300) with ``Retry-After``;
``max_inputs`` and ``max_tokens_per_request`` lower the server's limits, so tests can make it
refuse what the client's plan lets through.

Tokens are counted by a simple rule (one per whitespace-separated word), which the client's
estimate does not always bound: that is what exercises its handling of the server's limits.
Vectors are deterministic per (model, text, dimension) and unit length; there are no roles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedify.quantize import quantize
from embedify.testing import FakeService, Request, Response, embedding_items

API_KEY = "mistral-test-key-0123456789"
MODELS = {"mistral-embed": (1024, None), "codestral-embed": (1536, 3072)}
MAX_INPUTS = 128
OUTPUT_DTYPES = ("float", "int8", "uint8", "binary", "ubinary")
MAX_TOKENS_PER_REQUEST = 16384
MAX_TOKENS_PER_INPUT = 8192


def vector_for(model: str, text: str, dimension: int | None = None) -> np.ndarray:
    """The vector the fake returns: the first ``dimension`` of the model's full vector,
    normalised (codestral-embed's dimensions are ordered by relevance)."""
    full = MODELS[model][1] or MODELS[model][0]
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(full)[: dimension or MODELS[model][0]]
    unit: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return unit


def tokens_of(text: str) -> int:
    return max(1, len(text.split()))


def mistral_error(status: int, message: str, kind: str, code: str | None = None) -> Response:
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    return Response(status, body)


def _invalid(field: str, message: str, kind: str) -> Response:
    return Response(422, {"detail": [{"loc": ["body", field], "msg": message, "type": kind}]})


@dataclass
class FakeMistral(FakeService):
    rate_limit_every: int = 0
    max_inputs: int = MAX_INPUTS
    max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.method != "POST" or request.path != "/v1/embeddings":
            return Response(404, {"detail": "Not Found"})
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return Response(401, {"message": "Unauthorized", "request_id": f"{count:032x}"})
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            limited = mistral_error(429, "Rate limit exceeded", "rate_limited", "1300")
            limited.headers["retry-after"] = "0.05"
            return limited
        try:
            body = request.json()
        except ValueError:
            return _invalid("body", "JSON decode error", "json_invalid")
        problem = _validate(body)
        if problem is not None:
            return problem
        model, inputs = body["model"], body["input"]
        if model not in MODELS:
            return mistral_error(400, f"Invalid model: {model}", "invalid_model", "1500")
        if len(inputs) > self.max_inputs:
            return mistral_error(
                400,
                "Too many inputs in request, split into more batches.",
                "invalid_request_prompt",
                "3210",
            )
        counts = [tokens_of(text) for text in inputs]
        for index, tokens in enumerate(counts):
            if tokens > MAX_TOKENS_PER_INPUT:
                return mistral_error(
                    400,
                    f"Input id {index} has {tokens} tokens, exceeding max "
                    f"{MAX_TOKENS_PER_INPUT} tokens.",
                    "invalid_request_prompt",
                )
        if sum(counts) > self.max_tokens_per_request:
            return mistral_error(
                400,
                "Too many tokens overall, split into more batches.",
                "invalid_request_prompt",
                "3210",
            )
        dimension = body.get("output_dimension")
        maximum = MODELS[model][1]
        if dimension is not None and (maximum is None or dimension > maximum):
            return mistral_error(
                400,
                f"output_dimension {dimension} is not supported by {model}",
                "invalid_request_error",
            )
        vectors = [vector_for(model, text, dimension) for text in inputs]
        output_dtype = body.get("output_dtype", "float")
        if output_dtype != "float" and model != "codestral-embed":
            return mistral_error(
                400,
                f"output_dtype {output_dtype} is not supported by {model}",
                "invalid_request_error",
            )
        if output_dtype != "float":
            unit = np.stack([-np.ones(len(vectors[0])), np.ones(len(vectors[0]))])
            codes = quantize(np.stack(vectors), output_dtype, unit).astype(int).tolist()
            data = [
                {"object": "embedding", "embedding": c, "index": i} for i, c in enumerate(codes)
            ]
        else:
            data = embedding_items(vectors, as_base64=body.get("encoding_format") == "base64")
        data.reverse()  # clients must order by index
        tokens = sum(counts)
        return Response(
            200,
            {
                "id": f"embd-{count:032x}",
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
            },
            headers={
                "x-ratelimit-limit-req-minute": "720",
                "x-ratelimit-remaining-req-minute": "719",
                "x-ratelimit-limit-tokens-minute": "5000000",
                "x-ratelimit-remaining-tokens-minute": str(5000000 - tokens),
            },
        )


def _validate(body: Any) -> Response | None:
    """FastAPI's 422 for a body that does not fit the request schema."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _invalid("model", "Field required", "missing")
    inputs = body.get("input")
    if isinstance(inputs, str):
        body["input"] = [inputs]
    elif not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
        return _invalid("input", "Input should be a valid string or list", "string_type")
    dimension = body.get("output_dimension")
    if dimension is not None and (type(dimension) is not int or dimension < 1):
        return _invalid("output_dimension", "Input should be a positive integer", "int_type")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return _invalid("encoding_format", "Input should be 'float' or 'base64'", "enum")
    if body.get("output_dtype", "float") not in OUTPUT_DTYPES:
        return _invalid("output_dtype", f"Input should be one of {OUTPUT_DTYPES}", "enum")
    return None
