"""OpenAI's Batch API for embeddings: half the online price, results within 24 hours.

:class:`OpenAIBatchAPI` implements :class:`embedify.bulk.BatchAPI` with the official ``openai``
SDK (files.create with purpose ``batch``, batches.create on ``/v1/embeddings`` with a ``24h``
window, batches.retrieve/list/cancel, files.content), with the SDK's retries off: the bulk
runner backs off and resubmits. SDK errors become embedify's, as in the online model.

Limits, from OpenAI's API reference for "Create batch" (``input_file_id`` and ``endpoint``; the
same text is in openai-python's ``types/batch_create_params.py``): an input file holds up to
50,000 requests and 200 MB, and an ``/v1/embeddings`` batch at most 50,000 embedding inputs
across all its requests. Each request is an embeddings request, so its own limits hold: up to
2,048 inputs and 300,000 tokens (``CreateEmbeddingRequest``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from embedify import errors
from embedify.bulk import BatchInfo, BatchLimits, BatchResult, Price
from embedify_openai.model import decode

if TYPE_CHECKING:
    from embedify_openai.model import OpenAIEmbeddingModel

OPENAI_BATCH_LIMITS = BatchLimits(
    requests_per_file=50_000,
    bytes_per_file=200 * 1_000_000,
    inputs_per_request=2_048,
    inputs_per_batch=50_000,
    tokens_per_request=300_000,
)
#: US dollars per million input tokens (OpenAI's pricing page: the Batch API costs half);
#: override per job with ``embed-dataset --price ONLINE BATCH``.
PRICES: dict[str, Price] = {
    "text-embedding-3-small": Price(online=0.02, batch=0.01),
    "text-embedding-3-large": Price(online=0.13, batch=0.065),
    "text-embedding-ada-002": Price(online=0.10, batch=0.05),
}
#: Batches looked at when searching the one made from a file (newest first): a batch lost in
#: a crash was created moments before it.
FIND_SCAN_LIMIT = 500
ENDPOINT = "/v1/embeddings"


class OpenAIBatchAPI:
    """The Batch API of ``model``'s account and server, for ``model``'s requests."""

    def __init__(
        self,
        model: OpenAIEmbeddingModel,
        limits: BatchLimits = OPENAI_BATCH_LIMITS,
        price: Price | None = None,
    ) -> None:
        self.model = model
        self.limits = limits
        self.price = price or PRICES.get(model.model_id)
        self._client: Any = None

    def client(self) -> Any:
        """A synchronous ``openai.OpenAI`` with the model's key, server and headers."""
        import openai

        if self._client is None:
            model = self.model
            model.sdk_http_client()  # refuses a login in base_url, as online
            self._client = openai.OpenAI(
                api_key=model.api_key(),
                base_url=model.base_url,
                organization=model.options.organization,
                project=model.options.project,
                default_headers=model.default_headers(),
                timeout=model.options.timeout,
                max_retries=0,
                http_client=openai.DefaultHttpxClient(
                    timeout=model.options.timeout, follow_redirects=False
                ),
            )
        return self._client

    def _call(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        """``operation`` with the SDK's errors as embedify's."""
        import openai

        try:
            return operation(*args, **kwargs)
        except openai.APIStatusError as error:
            response = error.response
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise self.model.response_error(
                error.status_code, response.headers, body, str(response.request.url)
            ) from None
        except openai.APIError as error:
            raise self.model.transport_error(error) from None

    def _requested_dimensions(self) -> int | None:
        """The ``dimensions`` each request sends (``None``: the model's own width)."""
        dimensions = self.model.options.dimensions
        return dimensions if self.model.supports_dimensions else None

    # -- the BatchAPI protocol ---------------------------------------------------------------

    @property
    def dimension(self) -> int | None:
        return self._requested_dimensions() or self.model.info.dimension

    def request_line(self, custom_id: str, texts: list[str]) -> bytes:
        body: dict[str, Any] = {
            "model": self.model.model_id,
            "input": texts,
            "encoding_format": "base64",
        }
        dimensions = self._requested_dimensions()
        if dimensions is not None:
            body["dimensions"] = dimensions
        line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    def upload(self, name: str, content: bytes) -> str:
        files = self.client().files
        uploaded = self._call(files.create, file=(name, content), purpose="batch")
        return str(uploaded.id)

    def create(self, input_file_id: str) -> BatchInfo:
        batch = self._call(
            self.client().batches.create,
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"created_by": "embedify"},
        )
        return batch_info(batch)

    def retrieve(self, batch_id: str) -> BatchInfo:
        return batch_info(self._call(self.client().batches.retrieve, batch_id))

    def find(self, input_file_id: str) -> BatchInfo | None:
        page = self._call(self.client().batches.list, limit=100)
        for seen, batch in enumerate(page):
            if seen >= FIND_SCAN_LIMIT:
                break
            if batch.input_file_id == input_file_id:
                return batch_info(batch)
        return None

    def download(self, file_id: str) -> bytes:
        content: bytes = self._call(self.client().files.content, file_id).content
        return content

    def cancel(self, batch_id: str) -> BatchInfo:
        return batch_info(self._call(self.client().batches.cancel, batch_id))

    def parse_results(self, content: bytes) -> Iterator[BatchResult]:
        for number, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                custom_id = str(line["custom_id"])
            except (ValueError, KeyError, TypeError):
                raise errors.BadResponseError(
                    f"line {number} of a batch result file is not a result: {raw[:200]!r}"
                ) from None
            yield _result(custom_id, line, repr(self.model))


def _result(custom_id: str, line: dict[str, Any], source: str) -> BatchResult:
    """One output/error line: ``response.status_code`` 200 holds an embeddings response;
    anything else (an error body, or ``error`` such as ``batch_expired``) is a failure."""
    response = line.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    if response.get("status_code") != 200 or not isinstance(body, dict):
        problem = line.get("error") or (body or {}).get("error") or response
        return BatchResult(custom_id, None, error=json.dumps(problem)[:500])
    items = body.get("data") or []
    try:
        vectors = decode(items, len(items), source)
    except errors.EmbedifyError as error:
        return BatchResult(custom_id, None, error=str(error))
    usage = body.get("usage") or {}
    return BatchResult(custom_id, vectors, tokens=int(usage.get("prompt_tokens") or 0))


def batch_info(batch: Any) -> BatchInfo:
    """The SDK's ``Batch`` as the runner reads it."""
    counts = batch.request_counts
    found = batch.errors.data if batch.errors is not None and batch.errors.data else []
    return BatchInfo(
        id=batch.id,
        status=batch.status,
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        errors=tuple((error.line, f"{error.code}: {error.message}") for error in found),
    )
