"""A loopback server speaking Cohere's ``/v2/embed`` (what the ``cohere`` SDK expects).

Validation as the real API: bearer key, ``model`` and ``input_type`` required, 1..96 texts, no
empty strings, ``output_dimension`` only for embed-v4.0, ``truncate=NONE`` rejects inputs over
the model's 512 tokens; ``embedding_types`` picks the keys of ``embeddings``; errors are
``{"id", "message"}``. Faults: a 429 every n-th request, a share of 503s.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedify.testing import FakeService, Request, Response

API_KEY = "co-test-key"
DIMENSIONS = {
    "embed-v4.0": 1536,
    "embed-english-v3.0": 1024,
    "embed-multilingual-v3.0": 1024,
    "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384,
}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}


def vector_for(model: str, input_type: str, text: str, dimension: int | None = None) -> np.ndarray:
    seed = int.from_bytes(
        hashlib.sha256(f"{model}\0{input_type}\0{text}".encode()).digest()[:8], "little"
    )
    vector = np.random.default_rng(seed).standard_normal(DIMENSIONS[model])[:dimension]
    unit: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return unit


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"id": str(uuid.uuid4()), "message": message}, headers=headers or {})


@dataclass
class FakeCohere(FakeService):
    rate_limit_every: int = 0
    error_rate: float = 0.0

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.path != "/v2/embed":
            return _error(404, f"path {request.path} not found")
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid api token")
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return _error(
                429,
                "You are past the per minute request limit, please wait and try again later.",
                {"retry-after": "1"},
            )
        if roll < self.error_rate:
            return _error(503, "service unavailable")
        body = request.json()
        model, input_type, texts = body.get("model"), body.get("input_type"), body.get("texts")
        if model not in DIMENSIONS:
            return _error(
                404,
                f"model '{model}' not found, make sure the correct model ID was "
                "used and that you have access to the model.",
            )
        if input_type not in INPUT_TYPES:
            return _error(
                400, "invalid request: valid input_type must be provided with the provided model"
            )
        if not texts:
            return _error(400, "invalid request: texts must not be empty")
        if len(texts) > 96:
            return _error(
                400,
                f"invalid request: total number of texts must be at most 96 - "
                f"received {len(texts)}",
            )
        for index, text in enumerate(texts):
            if text == "":
                return _error(
                    400,
                    "invalid request: inputs contains an element that is the "
                    f"empty string at index {index}",
                )
        dimension = body.get("output_dimension")
        if dimension is not None and (
            model != "embed-v4.0" or dimension not in (256, 512, 1024, 1536)
        ):
            return _error(400, "invalid request: output_dimension is not supported for this model")
        limit = 128_000 if model == "embed-v4.0" else 512
        cut = []
        for text in texts:
            words = text.split()
            if len(words) > limit and body.get("truncate") == "NONE":
                return _error(
                    400,
                    f"invalid request: input is too long: {len(words)} tokens "
                    f"exceeds the maximum of {limit} tokens",
                )
            kept = words[-limit:] if body.get("truncate") == "START" else words[:limit]
            cut.append(" ".join(kept) if len(words) > limit else text)
        vectors = np.stack([vector_for(model, input_type, text, dimension) for text in cut])
        kinds = body.get("embedding_types") or ["float"]
        embeddings: dict[str, Any] = {}
        for kind in kinds:
            if kind == "float":
                embeddings["float"] = vectors.tolist()
            elif kind == "int8":
                embeddings["int8"] = (
                    np.clip(np.round(vectors * 127), -128, 127).astype(int).tolist()
                )
            elif kind == "uint8":
                embeddings["uint8"] = (
                    np.clip(np.round(vectors * 127 + 128), 0, 255).astype(int).tolist()
                )
            elif kind in ("binary", "ubinary"):
                packed = np.packbits(vectors > 0, axis=1).astype(int)
                embeddings[kind] = (packed - 128 if kind == "binary" else packed).tolist()
        tokens = sum(len(t.split()) for t in cut)
        return Response(
            200,
            {
                "id": str(uuid.uuid4()),
                "texts": texts,
                "embeddings": embeddings,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            },
        )
