"""``gemini:<model>``: the Gemini API's ``models/{model}:batchEmbedContents`` over httpx.

Facts, with their sources:

- Wire: ``POST /v1beta/models/{model}:batchEmbedContents`` with ``{"requests": [{"model":
  "models/{model}", "content": {"parts": [{"text": ...}]}, "taskType": ..., "outputDimensionality":
  ...}]}``; the answer is ``{"embeddings": [{"values": [...]}]}`` "in the same order as provided
  in the batch request" (no index, so count and width are what can be checked).
  https://ai.google.dev/api/embeddings
- Key: header ``x-goog-api-key``; of ``GEMINI_API_KEY`` and ``GOOGLE_API_KEY``, "if both are
  set, GOOGLE_API_KEY takes precedence" (as in the official SDK).
  https://ai.google.dev/gemini-api/docs/api-key
- gemini-embedding-001: 3072 dimensions, ``outputDimensionality`` 128-3072 (768/1536/3072
  recommended), 2048 input tokens; only the full 3072 is unit-length.
  https://ai.google.dev/gemini-api/docs/models/gemini-embedding-001 ,
  https://ai.google.dev/gemini-api/docs/embeddings
- text-embedding-004: 768 dimensions, 2048 input tokens; ``outputDimensionality`` is "supported
  by newer models since 2024" (ai.google.dev/api/embeddings). Google retires it on 2026-01-14
  (https://developers.googleblog.com/en/gemini-embedding-available-gemini-api/), after which its
  404 is a ``ModelNotFoundError``.
- 100 requests per batch call: the reference states no limit; the server answers 400 "at most 100
  requests can be in one batch" (https://github.com/langchain-ai/langchainjs/issues/4491,
  https://github.com/vercel/ai/pull/16575). No per-request token limit is documented (none set).
- Errors are ``{"error": {"code", "message", "status", "details"}}``; a bad key is 400
  ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``; ``FAILED_PRECONDITION`` means billing;
  429 ``RESOURCE_EXHAUSTED`` carries its wait in ``google.rpc.RetryInfo.retryDelay`` ("38s"),
  not in a header. https://ai.google.dev/gemini-api/docs/troubleshooting ,
  https://github.com/dcdpr/jp/pull/1061
- Over-long inputs: the reference does not say whether the server cuts or refuses them, so the
  engine cuts per ``truncate`` (2048 tokens) and a 400 "input token count (N) exceeds" is mapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

import embedify
from embedify import errors
from embedify.errors import untrusted
from embedify.http import ErrorResponse
from embedify.responses import vector_matrix

TaskType = Literal[
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
]
TASK_TYPES: dict[embedify.Role, TaskType] = {
    "document": "RETRIEVAL_DOCUMENT",
    "query": "RETRIEVAL_QUERY",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "gemini-embedding-001": {"dimension": 3072, "min_dimensions": 128, "normalized": True},
    "text-embedding-004": {"dimension": 768},
}


class GeminiOptions(embedify.HTTPOptions):
    task_types: dict[embedify.Role, TaskType] | None = Field(
        None, description="Role -> Gemini taskType, over the defaults (e.g. SEMANTIC_SIMILARITY)."
    )


class GeminiEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "gemini"
    default_model_id = "gemini-embedding-001"
    options_class = GeminiOptions
    options: GeminiOptions
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    version_paths = ("/v1beta",)
    api_key_variables = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    capabilities = embedify.Capabilities(
        dimensions_mode="native",  # every model since 2024; the server judges others
        limits=embedify.Limits(max_inputs_per_request=100, max_tokens_per_input=2048),
    )

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.api_model = self.model_id.removeprefix("models/")  # "models/x" is accepted too
        self.known = KNOWN_MODELS.get(self.api_model, {})
        self.task_types = {**TASK_TYPES, **(self.options.task_types or {})}

    def configure(self) -> embedify.Capabilities:
        return replace(
            self.capabilities,
            dimension=self.known.get("dimension"),
            # gemini-embedding-001's shorter outputs are not unit-length
            normalized=bool(self.known.get("normalized")) and self.options.dimensions is None,
            roles={role: f"taskType={task}" for role, task in self.task_types.items()},
        )

    def dimensions_problem(self) -> str | None:
        requested, floor = self.options.dimensions, self.known.get("min_dimensions")
        if requested is not None and floor and requested < floor:
            native = self.capabilities.dimension
            return f"{self!r} offers dimensions {floor}..{native}, not {requested}."
        return super().dimensions_problem()

    def make_client(self) -> Any:
        headers = self.default_headers()
        key = self.api_key()
        if key:
            headers.setdefault("x-goog-api-key", key)
        return self.httpx_client(base_url=self.base_url or "", headers=headers)

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        common: dict[str, Any] = {
            "model": f"models/{self.api_model}",
            "taskType": self.task_types[role],
        }
        if self.options.dimensions is not None:
            common["outputDimensionality"] = self.options.dimensions
        requests = [{**common, "content": {"parts": [{"text": text}]}} for text in texts]
        path = f"/v1beta/models/{quote(self.api_model, safe='')}:batchEmbedContents"
        answer = await self.request_json("POST", path, {"requests": requests})
        items = answer.get("embeddings") if isinstance(answer, Mapping) else None
        if not isinstance(items, list):
            raise errors.BadResponseError(
                f"{self!r} returned an invalid answer: no embeddings list."
            )
        rows = []
        for position, item in enumerate(items):
            if not isinstance(item, Mapping) or "values" not in item:
                raise errors.BadResponseError(
                    f"{self!r} returned an invalid answer: embedding {position} has no values."
                )
            rows.append(item["values"])
        return vector_matrix(rows, len(texts), source=repr(self))  # checks count and width

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Google's ``error.status`` and ``details`` (the base reads only ``message``)."""
        body = response.body.get("error") if isinstance(response.body, Mapping) else None
        error: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        status, message = response.status, response.message
        google = untrusted(self.redact(str(error.get("status") or "")), 40)
        text = f"{self.provider} {status} {google}: {message}" if google else response.text
        if any(d.get("reason") == "API_KEY_INVALID" for d in _details(error, "ErrorInfo")):
            where = " or ".join(self.api_key_variables)
            return errors.AuthenticationError(f"{text} (check api_key / {where})", status=status)
        if google == "FAILED_PRECONDITION":
            return errors.QuotaExceededError(text, status=status)
        if status == 400 and "requests can be in one batch" in message:
            return errors.BatchTooLargeError(text, status=status)
        too_long = _TOO_LONG.search(message)
        if status == 400 and too_long:
            return errors.InputTooLongError(text, status=status, tokens=int(too_long[1]))
        if status == 404 and google == "NOT_FOUND" and "models/" in message:
            return errors.ModelNotFoundError(text, status=status)
        if status == 429:
            if _daily_quota(error):
                return errors.QuotaExceededError(f"{text} (a daily quota)", status=status)
            wait = response.retry_after  # a Retry-After header (a proxy's), else Google's body
            wait = _retry_delay(error) if wait is None else wait
            return errors.RateLimitError(text, status=status, retry_after=wait)
        return None


_TOO_LONG = re.compile(r"input token count \(?(\d+)\)? exceeds")
_DURATION = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)s")  # protobuf Duration JSON: "38s", "1.5s"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _daily_quota(error: Mapping[str, Any]) -> bool:
    """Whether a ``google.rpc.QuotaFailure`` names a per-day quota (waiting a minute is futile)."""
    for failure in _details(error, "QuotaFailure"):
        for violation in _list(failure.get("violations")):
            if isinstance(violation, Mapping) and "PerDay" in str(violation.get("quotaId")):
                return True
    return False


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    """The wait a ``google.rpc.RetryInfo`` asks for, in seconds."""
    for info in _details(error, "RetryInfo"):
        delay = _DURATION.fullmatch(str(info.get("retryDelay")))
        if delay:
            return float(delay[1])
    return None


def _details(error: Mapping[str, Any], kind: str) -> Iterator[Mapping[str, Any]]:
    """The ``google.rpc.<kind>`` entries of an error's ``details``."""
    for detail in _list(error.get("details")):
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith(f".{kind}"):
            yield detail
