"""``jina:<model>``: Jina AI's ``/v1/embeddings`` over httpx, on :mod:`embedify.http`.

Roles become Jina ``task`` values, and the query and document tasks differ
(``retrieval.query`` / ``retrieval.passage``), which is what Jina's retrieval models need.
``precision`` binary/ubinary becomes Jina's ``embedding_type`` binary/ubinary (sign bits packed
eight to a byte, as int8 or uint8: https://api.jina.ai/redoc, ``TextEmbeddingInput``); int8 and
uint8, which Jina does not offer, are quantized by the engine.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.responses import ordered_embeddings, vector_matrix

RETRIEVAL_TASKS = {
    "query": "retrieval.query",
    "document": "retrieval.passage",
    "classification": "classification",
    "clustering": "separation",
}
CODE_TASKS = {"query": "nl2code.query", "document": "nl2code.passage"}
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "jina-embeddings-v3": {
        "dimension": 1024,
        "tokens": 8192,
        "items": 2048,
        "tasks": RETRIEVAL_TASKS,
        "matryoshka": True,
    },
    "jina-embeddings-v4": {
        "dimension": 2048,
        "tokens": 32768,
        "items": 512,
        "tasks": {"query": "retrieval.query", "document": "retrieval.passage"},
        "matryoshka": True,
    },
    "jina-clip-v2": {
        "dimension": 1024,
        "tokens": 8192,
        "items": 2048,
        "tasks": {"query": "retrieval.query", "document": "retrieval.passage"},
        "matryoshka": True,
    },
    "jina-embeddings-v2-base-en": {
        "dimension": 768,
        "tokens": 8192,
        "items": 2048,
        "tasks": {},
        "matryoshka": False,
    },
    "jina-code-embeddings-0.5b": {
        "dimension": 896,
        "tokens": 32768,
        "items": 512,
        "tasks": CODE_TASKS,
        "matryoshka": True,
    },
    "jina-code-embeddings-1.5b": {
        "dimension": 1536,
        "tokens": 32768,
        "items": 512,
        "tasks": CODE_TASKS,
        "matryoshka": True,
    },
}


class JinaOptions(embedify.HTTPOptions):
    tasks: dict[str, str] | None = Field(None, description="Role -> Jina task, over the defaults.")
    embedding_type: Literal["float", "base64"] = Field("float", description="Wire encoding.")
    late_chunking: bool = Field(
        False, description="Embed each request's inputs in one context (Jina late chunking)."
    )


class JinaEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "jina"
    default_model_id = "jina-embeddings-v3"
    options_class = JinaOptions
    options: JinaOptions
    capabilities = embedify.Capabilities(
        precisions=("float32", "binary", "ubinary"),
        max_concurrency=5,  # the free tier's concurrency
    )
    default_base_url = "https://api.jina.ai"
    version_paths = ("/v1",)
    api_key_variables = ("JINA_API_KEY",)

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        known = KNOWN_MODELS.get(self.model_id, {"tasks": {}})
        self.tasks = {**known["tasks"], **(self.options.tasks or {})}

    def configure(self) -> embedify.Capabilities:
        """A known model's dimension, Matryoshka support and limits; the roles its tasks (and
        the ``tasks`` option) give."""
        known = KNOWN_MODELS.get(self.model_id, {})
        return replace(
            self.capabilities,
            dimension=known.get("dimension"),
            dimensions_mode="native" if known.get("matryoshka") else "fixed",
            normalized=bool(self.options.normalize),
            limits=embedify.Limits(
                max_inputs_per_request=known.get("items", 2048),
                max_tokens_per_input=known.get("tokens"),
            ),
            roles={
                role: f"task={self.tasks[role]}" if role in self.tasks else "no task"
                for role in ("document", "query", *self.tasks)
            },
            # Jina cuts at the end when asked; cutting at the start is done here.
            truncates=self.options.truncate == "end",
        )

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        body: dict[str, Any] = {
            "model": self.model_id,
            "input": texts,
            "embedding_type": self.options.precision
            if self.quantized_by == "provider"
            else self.options.embedding_type,
            "truncate": self.options.truncate == "end",
        }
        if role in self.tasks:
            body["task"] = self.tasks[role]
        if self.options.dimensions is not None:
            body["dimensions"] = self.options.dimensions
        if self.options.normalize is not None:
            body["normalized"] = self.options.normalize
        if self.options.late_chunking:
            body["late_chunking"] = True
        answer = await self.request_json("POST", "/v1/embeddings", body)
        data = answer.get("data") if isinstance(answer, dict) else None
        ordered = ordered_embeddings(data, len(texts), source=repr(self))
        return vector_matrix(ordered, len(texts), source=repr(self))

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Jina's ``detail`` texts: item limits, balance, input length, unknown model."""
        status, detail, text = response.status, response.message, response.text
        if _TOO_MANY.search(detail):
            return errors.BatchTooLargeError(text, status=status)
        if "INSUFFICIENT_BALANCE" in detail:
            return errors.QuotaExceededError(text, status=status)
        if status in (400, 422) and re.search(
            r"too long|exceeds the maximum|context length", detail
        ):
            return errors.InputTooLongError(text, status=status)
        if "MODEL_NOT_FOUND" in detail:
            return errors.ModelNotFoundError(text, status=status)
        return None


_TOO_MANY = re.compile(r"larger than the largest allowed size|can contain at most \d+ items")
