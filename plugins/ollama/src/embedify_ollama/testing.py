"""A loopback Ollama server: ``POST /api/embed`` as ``server/routes.go`` answers it.

Models must be pulled (``pulled``; ``name`` and ``name:latest`` are one), else 404
``{"error": "model 'x' not found"}``; ``input`` is a string or a list of strings, else 400
"invalid input type"; each input's tokens (here: words) beyond the context (the model's, capped
by ``options.num_ctx``) are cut when ``truncate`` is absent or true, and answered 400 "the input
length exceeds the context length" when false; ``dimensions`` cuts and renormalises (``version``
before 0.11.11 ignores it); every vector is unit-length. Other routes answer Gin's plain-text
404. With ``api_key`` set (ollama.com) a request without that bearer key is 401
``{"error": "unauthorized"}``. ``max_queue`` > 0 answers 503 "server busy" to requests beyond
that many in flight (with ``latency``), and ``rate_limit_every`` answers ollama.com's 429.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from embedify.testing import FakeService, Request, Response

MODELS = {
    "nomic-embed-text": (768, 2048),
    "mxbai-embed-large": (1024, 512),
    "all-minilm": (384, 512),
}
SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"


def vector_for(model: str, text: str, dimensions: int | None = None) -> np.ndarray:
    """The unit vector the fake answers for ``text`` (prefix included) as ``model`` embeds it."""
    name = model.removesuffix(":latest")
    seed = int.from_bytes(hashlib.sha256(f"{name}\0{text}".encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(MODELS[name][0])
    vector /= np.linalg.norm(vector)
    if dimensions and 0 < dimensions < len(vector):
        vector = vector[:dimensions] / np.linalg.norm(vector[:dimensions])
    return vector.astype(np.float32)


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"error": message}, headers=dict(headers))


@dataclass
class FakeOllama(FakeService):
    pulled: set[str] = field(default_factory=lambda: set(MODELS))
    version: tuple[int, int, int] = (0, 12, 0)
    api_key: str | None = None
    max_queue: int = 0
    latency: float = 0.0
    rate_limit_every: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._in_flight = 0
        self._queue_lock = threading.Lock()

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.method != "POST" or request.path != "/api/embed":
            return Response(404, "404 page not found")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized")
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return _error(429, "too many requests")
        with self._queue_lock:
            if self.max_queue and self._in_flight >= self.max_queue:
                return _error(503, SERVER_BUSY)
            self._in_flight += 1
        try:
            time.sleep(self.latency)  # in flight meanwhile: the queue fills
            return self._embed(request)
        finally:
            with self._queue_lock:
                self._in_flight -= 1

    def _embed(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError as error:
            return _error(400, str(error))
        if not isinstance(body, dict):
            return _error(400, "json: cannot unmarshal into Go value of type api.EmbedRequest")
        model = str(body.get("model") or "")
        name = model.removesuffix(":latest")
        if name not in self.pulled or name not in MODELS:
            return _error(404, f"model '{model}' not found")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs] if inputs else []
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return _error(400, "invalid input type")
        context = MODELS[name][1]
        num_ctx = (body.get("options") or {}).get("num_ctx")
        if isinstance(num_ctx, int) and num_ctx > 0:
            context = min(context, num_ctx)
        texts = []
        for text in inputs:
            words = text.split(" ")
            if len(words) > context:
                if body.get("truncate") is False:
                    return _error(400, "the input length exceeds the context length")
                text = " ".join(words[:context])
            texts.append(text)
        dimensions = body.get("dimensions") if self.version >= (0, 11, 11) else None
        vectors = [vector_for(name, text, dimensions).tolist() for text in texts]
        return Response(
            200,
            {
                "model": model,
                "embeddings": vectors,
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(len(t.split(" ")) for t in texts),
            },
        )
