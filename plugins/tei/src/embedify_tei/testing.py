"""A loopback Text-Embeddings-Inference server: ``/info``, ``/embed``, ``/v1/embeddings``,
``/health``, with TEI's validation and error bodies (``{"error", "error_type"}``, PascalCase
types; Validation is 413 before TEI 1.9 and 422 from 1.9), permits (each input of a request
takes one of ``max_concurrent_requests``; none left answers 429 "Model is overloaded"), an
optional bearer key (401 with an empty body), and the OpenAI-compatible route's flat errors.

Other clients can hold permits (``other_clients_permits``) and leave after the server has
answered ``other_clients_leave_after`` overloads; ``arrivals`` records, for each ``/embed``
request, how many were being served at once (counting it) and its status."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedify.testing import FakeService, Request, Response, embedding_items


def vector_for(
    text: str, dimension: int = 384, normalize: bool = True, prompt: str = ""
) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{prompt}{text}".encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(384)[:dimension] * 2
    return (vector / np.linalg.norm(vector) if normalize else vector).astype(np.float32)


@dataclass
class FakeTEI(FakeService):
    max_client_batch_size: int = 32
    max_input_length: int = 512
    max_concurrent_requests: int = 512
    version: str = "1.9.3"
    api_key: str | None = None
    prompts: dict[str, str] = field(default_factory=lambda: {"query": "query: "})
    latency: float = 0.0
    other_clients_permits: int = 0
    other_clients_leave_after: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._permits_used = 0
        self._in_flight = 0
        self._overloads = 0
        self.arrivals: list[tuple[int, int]] = []

    @property
    def validation_status(self) -> int:
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return 422 if (major, minor) >= (1, 9) else 413

    def _error(self, status: int, message: str, kind: str) -> Response:
        return Response(status, {"error": message, "error_type": kind})

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.path == "/health":
            return Response(200, b"")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response(401, b"")
        if request.path == "/info" and request.method == "GET":
            return Response(
                200,
                {
                    "model_id": "BAAI/bge-small-en-v1.5",
                    "model_sha": "5c38ec7",
                    "model_dtype": "float16",
                    "model_type": {"embedding": {"pooling": "cls"}},
                    "max_concurrent_requests": self.max_concurrent_requests,
                    "max_input_length": self.max_input_length,
                    "max_batch_tokens": 16384,
                    "max_batch_requests": None,
                    "max_client_batch_size": self.max_client_batch_size,
                    "auto_truncate": True,
                    "tokenization_workers": 2,
                    "version": self.version,
                    "sha": None,
                    "docker_label": None,
                },
            )
        if request.path == "/embed" and request.method == "POST":
            with self._lock:
                self._in_flight += 1
                in_flight = self._in_flight
            try:
                response = self._embed(request.json())
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self.arrivals.append((in_flight, response.status))
            return response
        if request.path in ("/v1/embeddings", "/embeddings") and request.method == "POST":
            return self._openai(request.json())
        return Response(404, b"")

    def _texts(self, inputs: Any, truncate: bool, left: bool) -> list[str] | Response:
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs:
            return self._error(400, "`inputs` cannot be empty", "Empty")
        if len(inputs) > self.max_client_batch_size:
            return self._error(
                self.validation_status,
                f"batch size {len(inputs)} > maximum "
                f"allowed batch size {self.max_client_batch_size}",
                "Validation",
            )
        texts = []
        for text in inputs:
            if text == "":
                return self._error(400, "Input validation error: `inputs` cannot be empty", "Empty")
            words = text.split()
            if len(words) > self.max_input_length:
                if not truncate:
                    return self._error(
                        self.validation_status,
                        "Input validation error: `inputs` "
                        f"must have less than {self.max_input_length} tokens. "
                        f"Given: {len(words)}",
                        "Validation",
                    )
                kept = words[-self.max_input_length :] if left else words[: self.max_input_length]
                text = " ".join(kept)
            texts.append(text)
        return texts

    def _take_permits(self, count: int) -> bool:
        with self._lock:
            others = self.other_clients_permits
            if self._permits_used + others + count > self.max_concurrent_requests:
                self._overloads += 1
                if self._overloads == self.other_clients_leave_after:
                    self.other_clients_permits = 0
                return False
            self._permits_used += count
            return True

    def _embed(self, body: dict[str, Any]) -> Response:
        direction = str(body.get("truncation_direction", "Right")).lower()
        texts = self._texts(
            body.get("inputs"), bool(body.get("truncate", True)), direction == "left"
        )
        if isinstance(texts, Response):
            return texts
        prompt_name = body.get("prompt_name")
        if prompt_name is not None and prompt_name not in self.prompts:
            return self._error(
                422,
                f"Input validation error: `prompt_name` `{prompt_name}` is "
                "not in the model's prompts",
                "Validation",
            )
        dimension = body.get("dimensions")
        if dimension is not None and not 0 < dimension <= 384:
            return self._error(
                422,
                "Input validation error: `dimensions` should be smaller than "
                "the maximum embedding dimension.",
                "Validation",
            )
        if not self._take_permits(len(texts)):
            return self._error(429, "Model is overloaded", "Overloaded")
        try:
            time.sleep(self.latency)
            prompt = self.prompts.get(prompt_name or "", "")
            vectors = [
                vector_for(t, dimension or 384, body.get("normalize", True), prompt) for t in texts
            ]
        finally:
            with self._lock:
                self._permits_used -= len(texts)
        return Response(
            200,
            [v.tolist() for v in vectors],
            headers={"x-compute-type": "cpu", "x-compute-tokens": str(len(texts))},
        )

    def _openai(self, body: dict[str, Any]) -> Response:
        texts = self._texts(body.get("input"), True, False)
        if isinstance(texts, Response):
            error = texts.body
            return Response(
                texts.status,
                {"message": error["error"], "code": texts.status, "type": error["error_type"]},
            )
        dimension = body.get("dimensions")
        vectors = [vector_for(t, dimension or 384) for t in texts]
        as_base64 = body.get("encoding_format") == "base64"
        data = embedding_items(vectors, as_base64=as_base64)
        tokens = sum(len(t.split()) for t in texts)
        return Response(
            200,
            {
                "object": "list",
                "data": data,
                "model": "BAAI/bge-small-en-v1.5",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
