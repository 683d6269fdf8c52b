"""A loopback server speaking the Gemini API's ``POST /v1beta/models/{model}:batchEmbedContents``.

It checks what Google checks: the ``x-goog-api-key`` header (none: 403 ``PERMISSION_DENIED``; a
wrong one: 400 ``API_KEY_INVALID``, as Google answers), the model in the path and in every
request, at most 100 requests per call, ``taskType`` values, ``outputDimensionality`` within the
model's range, and 2048 tokens per input (here a token is a word; the message is Google's
"input token count (N) exceeds"). Errors have Google's ``{"error": {"code", "message",
"status", "details"}}`` shape; a 429 carries its wait in ``google.rpc.RetryInfo`` and no header,
and a spent daily quota names a ``...PerDay...`` quota. Vectors are deterministic per (model,
taskType, text); gemini-embedding-001's full vector is unit-length and ``outputDimensionality``
cuts it from the end without normalising, as documented.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedify.testing import FakeService, Request, Response

API_KEY = "gemini_test_key"
# Written again from the API reference, not imported from the plugin: a slip in the plugin's
# tables then shows as a failing test instead of agreeing with itself.
MODELS = {"gemini-embedding-001": (3072, 128), "text-embedding-004": (768, 1)}  # (dim, least)
TASK_TYPES = {
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}
MAX_REQUESTS = 100
MAX_INPUT_TOKENS = 2048
_ROUTE = re.compile(r"/v1beta/models/([^/:]+):batchEmbedContents")
_TYPE = "type.googleapis.com/google.rpc."


def vector_for(model: str, task: str | None, text: str, dimension: int | None = None) -> Any:
    seed = int.from_bytes(
        hashlib.sha256(f"{model}\0{task}\0{text}".encode()).digest()[:8], "little"
    )
    vector = np.random.default_rng(seed).standard_normal(MODELS[model][0])
    return (vector / np.linalg.norm(vector))[:dimension].astype(np.float32)


def google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    """An error answer in Google's shape."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Response(code, {"error": error})


def quota_exhausted(quota_id: str, retry_delay: str) -> Response:
    """Google's 429: the quota that ran out, and how long to wait (in the body only)."""
    return google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
        f"\nPlease retry in {retry_delay}.",
        [
            {
                "@type": f"{_TYPE}QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/embed_content_requests",
                        "quotaId": quota_id,
                        "quotaValue": "100",
                    }
                ],
            },
            {"@type": f"{_TYPE}RetryInfo", "retryDelay": retry_delay},
        ],
    )


def _invalid(message: str) -> Response:
    return google_error(400, "INVALID_ARGUMENT", message)


@dataclass
class FakeGemini(FakeService):
    rate_limit_every: int = 0  # every n-th request answers a per-minute 429
    daily_quota_spent: bool = False
    max_input_tokens: int = MAX_INPUT_TOKENS

    def answer(self, request: Request, count: int, roll: float) -> Response:
        route = _ROUTE.fullmatch(request.path)
        if request.method != "POST" or route is None:
            return Response(404, f"<html><title>Error 404 (Not Found)!!1</title>{request.path}")
        key = request.headers.get("x-goog-api-key")
        if not key:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if key != API_KEY:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [{"@type": f"{_TYPE}ErrorInfo", "reason": "API_KEY_INVALID"}],
            )
        if self.daily_quota_spent:
            return quota_exhausted("EmbedContentRequestsPerDayPerProjectPerModel", "3600s")
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return quota_exhausted("EmbedContentRequestsPerMinutePerProjectPerModel", "0.05s")
        model = route[1]
        if model not in MODELS:
            return google_error(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "batchEmbedContents. Call ListModels to see the list of available models and "
                "their supported methods.",
            )
        requests = request.json().get("requests")
        if not isinstance(requests, list) or not requests:
            return _invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
        if len(requests) > MAX_REQUESTS:
            return _invalid(
                f"* BatchEmbedContentsRequest.requests: at most {MAX_REQUESTS} requests can be in "
                "one batch\n"
            )
        vectors = []
        for index, item in enumerate(requests):
            problem = self._problem(model, index, item)
            if problem is not None:
                return problem
            text = " ".join(part["text"] for part in item["content"]["parts"])
            task, dimension = item.get("taskType"), item.get("outputDimensionality")
            vectors.append({"values": vector_for(model, task, text, dimension).tolist()})
        return Response(200, {"embeddings": vectors})

    def _problem(self, model: str, index: int, item: dict[str, Any]) -> Response | None:
        where = f"BatchEmbedContentsRequest.requests[{index}]"
        if item.get("model") != f"models/{model}":
            return _invalid(
                f"* {where}.model: the model in each request must match the model of the batch\n"
            )
        task = item.get("taskType")
        if task is not None and task not in TASK_TYPES:
            return _invalid(
                f"Invalid value at 'requests[{index}].task_type' "
                f'(type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), "{task}"'
            )
        dimension, (native, least) = item.get("outputDimensionality"), MODELS[model]
        if dimension is not None and not (
            isinstance(dimension, int) and least <= dimension <= native
        ):
            return _invalid(f"* {where}.output_dimensionality: must be in [{least}, {native}]\n")
        tokens = sum(len(part["text"].split()) for part in item["content"]["parts"])
        if tokens > self.max_input_tokens:
            return _invalid(
                f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
                f"({self.max_input_tokens})."
            )
        return None
