"""A loopback server speaking Jina's ``/v1/embeddings``: bearer key, per-model item limits
(2048; 512 for v4) with Jina's messages, ``task`` per model, ``dimensions``, ``normalized``,
``embedding_type`` float/base64/binary/ubinary (sign bits packed), ``truncate`` (8192 words per
input otherwise 400), FastAPI-style ``{"detail": ...}`` errors, and 429 faults."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from embedify.quantize import quantize
from embedify.testing import FakeService, Request, Response, embedding_items

API_KEY = "jina_test_key"
MODELS = {
    "jina-embeddings-v3": (1024, 2048),
    "jina-embeddings-v4": (2048, 512),
    "jina-embeddings-v2-base-en": (768, 2048),
    "jina-clip-v2": (1024, 2048),
}
TASKS = {
    "retrieval.query",
    "retrieval.passage",
    "text-matching",
    "classification",
    "separation",
    "code.query",
    "code.passage",
}


def vector_for(
    model: str, task: str | None, text: str, dimension: int | None = None, normalized: bool = True
) -> np.ndarray:
    seed = int.from_bytes(
        hashlib.sha256(f"{model}\0{task}\0{text}".encode()).digest()[:8], "little"
    )
    vector = np.random.default_rng(seed).standard_normal(MODELS[model][0])[:dimension] * 3
    return (vector / np.linalg.norm(vector) if normalized else vector).astype(np.float32)


def _detail(status: int, detail: str) -> Response:
    return Response(status, {"detail": f"[RID: 06b5f7bdde6ea380106a87fe6ab8ec5a] {detail}"})


@dataclass
class FakeJina(FakeService):
    rate_limit_every: int = 0

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.path != "/v1/embeddings":
            return Response(404, {"detail": "Not Found"})
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return Response(401, {"detail": "AUTH_INVALID_API_KEY: Invalid API key"})
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return Response(429, {"detail": "Rate limit exceeded"}, headers={"retry-after": "0.05"})
        body = request.json()
        model, inputs, task = body.get("model"), body.get("input"), body.get("task")
        if model not in MODELS:
            return _detail(400, f"INPUT_MODEL_NOT_FOUND: model {model} not found")
        limit = MODELS[model][1]
        if len(inputs) > limit:
            if model == "jina-embeddings-v4":
                return _detail(400, f"Each input list can contain at most {limit} items")
            return _detail(400, f"input length is larger than the largest allowed size {limit}")
        if task is not None and (task not in TASKS or model == "jina-embeddings-v2-base-en"):
            return Response(422, {"detail": [{"loc": ["body", "task"], "msg": "invalid task"}]})
        texts = []
        for text in inputs:
            words = text.split()
            if len(words) > 8192 and not body.get("truncate"):
                return _detail(
                    400,
                    f"Input text is too long: {len(words)} tokens exceeds the "
                    "maximum of 8192 tokens",
                )
            texts.append(" ".join(words[:8192]) if len(words) > 8192 else text)
        normalized = body.get("normalized", True)
        vectors = [vector_for(model, task, t, body.get("dimensions"), normalized) for t in texts]
        kind = body.get("embedding_type", "float")
        if kind in ("binary", "ubinary"):
            codes = quantize(np.stack(vectors), kind).tolist()
            data = [
                {"object": "embedding", "embedding": row, "index": index}
                for index, row in enumerate(codes)
            ]
        else:
            data = embedding_items(vectors, as_base64=kind == "base64")
        data.reverse()  # clients must order by index
        tokens = sum(len(t.split()) for t in texts)
        return Response(
            200,
            {
                "model": model,
                "object": "list",
                "data": data,
                "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
            },
            headers={
                "X-RateLimit-Remaining-Requests": "499",
                "X-RateLimit-Remaining-Tokens": "999000",
            },
        )
