"""``acme:<model>``: the (fictional) Acme embeddings API, on :class:`embedify.HTTPEmbeddingModel`.

The provider to copy: the API's facts as data, one method from a batch to a request and one
from an error body to an embedify error. Batching, retries, pacing, truncation and caching are
the engine's; the key, the client and the status table are the base's.

Acme's wire, from its (fictional) API reference:

- ``POST https://api.acme.example/v1/embed`` with ``Authorization: Bearer <key>``; the body
  holds ``model``, ``inputs`` (a list of strings), ``input_type`` (``query`` or ``document``)
  and, on models that offer it, ``dimensions``. The answer is ``{"embeddings": [[...], ...],
  "usage": {"tokens": n}}``: one unit-length vector per input, in input order.
- acme-embed-1 returns 256 dimensions, or 64 or 128 when ``dimensions`` asks; acme-embed-mini
  returns 64, and refuses ``dimensions``.
- Per request: at most 64 inputs and 8,192 tokens; 512 tokens per input.
- Errors are ``{"error": {"message", "code"}}``: 401 ``unauthorized``; 404 ``model_not_found``;
  400 ``input_too_long`` (with the input's ``index``) or ``invalid_input``; 413
  ``too_many_inputs`` or ``too_many_tokens``; 429 ``rate_limited`` with ``Retry-After``; 503
  ``unavailable``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.protocol import Vectors
from embedify.responses import vector_matrix

# model: (dimension when none is asked for, the dimensions it returns on request; None: fixed)
MODELS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "acme-embed-1": (256, (64, 128, 256)),
    "acme-embed-mini": (64, None),
}
INPUT_TYPES: dict[str, str] = {"document": "document", "query": "query"}  # role: input_type


class AcmeEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "acme"
    default_model_id = "acme-embed-1"
    default_base_url = "https://api.acme.example"
    version_paths = ("/v1",)  # ".../v1" and the bare host are the same server
    api_key_variables = ("ACME_API_KEY",)
    capabilities = embedify.Capabilities(
        dimensions_mode="native",
        normalized=True,
        limits=embedify.Limits(
            max_inputs_per_request=64, max_tokens_per_request=8192, max_tokens_per_input=512
        ),
        roles={role: f"input_type={value}" for role, value in INPUT_TYPES.items()},
    )

    def configure(self) -> embedify.Capabilities:
        # A model missing from the table (a newer one) learns its dimension from the first
        # answer, and Acme judges the dimensions it is sent.
        dimension, allowed = MODELS.get(self.model_id, (None, None))
        fixed = dimension is not None and allowed is None
        return replace(
            self.capabilities,
            dimension=dimension,
            allowed_dimensions=allowed,
            dimensions_mode="fixed" if fixed else "native",
        )

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Vectors:
        body: dict[str, Any] = {
            "model": self.model_id,
            "inputs": texts,
            "input_type": INPUT_TYPES[role],
        }
        if self.options.dimensions is not None:
            body["dimensions"] = self.options.dimensions
        answer = await self.request_json("POST", "/v1/embed", body)
        if not isinstance(answer, dict):
            raise errors.BadResponseError(
                f"{self!r} answered a {type(answer).__name__}, not an object"
            )
        usage = answer.get("usage")
        if isinstance(usage, dict) and type(usage.get("tokens")) is int:
            embedify.observe_usage(usage["tokens"])  # pace by the tokens Acme charged
        return vector_matrix(answer.get("embeddings"), len(texts), source=repr(self))

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Acme's codes that say more than the status; the base's table reads the rest."""
        if response.code == "model_not_found":
            return errors.ModelNotFoundError(response.text, status=response.status)
        if response.code == "input_too_long":  # the body names the input by its place in the batch
            detail = response.body.get("error") if isinstance(response.body, dict) else None
            index = detail.get("index") if isinstance(detail, dict) else None
            return errors.InputTooLongError(
                response.text, status=response.status, index=index if type(index) is int else None
            )
        return None
