"""``voyage:<model>``: Voyage AI's ``POST /v1/embeddings`` over httpx, on :mod:`embedify.http`.

Facts from the API reference, https://docs.voyageai.com/reference/embeddings-api: bearer key;
body ``model``, ``input`` (a list), ``input_type`` (null, ``query`` or ``document``: Voyage
prepends a retrieval prompt for the last two), ``truncation`` (default true: over-long inputs
are cut; false: an error), ``output_dimension``, ``output_dtype``, ``encoding_format`` (null or
``base64``); answer ``{"object": "list", "data": [{"object": "embedding", "embedding": [...],
"index": i}], "model": ..., "usage": {"total_tokens": n}}``. Per request: at most 1,000 inputs
and a total of 1M tokens (voyage-4-lite, voyage-3.5-lite), 320K (voyage-4, voyage-3.5) or 120K
(voyage-4-large, voyage-3-large, voyage-code-3, voyage-finance-2, voyage-law-2).
Context lengths and dimensions: https://docs.voyageai.com/docs/embeddings (voyage-4 series:
https://www.mongodb.com/docs/voyageai/models/). Vectors are unit length:
https://docs.voyageai.com/docs/faq. Errors are ``{"detail": "..."}`` (the official client
reads ``detail``: github.com/voyage-ai/voyageai-python, api_requestor.py), 400 for every
request problem (https://docs.voyageai.com/docs/error-codes); the texts matched below are
quoted in public bug reports, as noted. No rate-limit headers are documented; 429s may carry
``Retry-After``, which the official client reads.

``precision`` maps to ``output_dtype`` (float, int8, uint8, binary, ubinary; the last two packed,
a byte per 8 dimensions, binary in offset binary) on the models the reference lists for it:
the voyage-4 series, voyage-3-large, voyage-3.5, voyage-3.5-lite and voyage-code-3. Other models'
floats are quantized by the engine. Quantized answers are asked for as JSON lists: base64
(``encoding_format``) applies to float vectors.
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

FLEXIBLE = (256, 512, 1024, 2048)  # output_dimension values; 1024 is the default
# model: (native dimension, allowed output_dimension values, context tokens, tokens per request)
KNOWN_MODELS: dict[str, tuple[int, tuple[int, ...] | None, int, int]] = {
    "voyage-4-large": (1024, FLEXIBLE, 32_000, 120_000),
    "voyage-4": (1024, FLEXIBLE, 32_000, 320_000),
    "voyage-4-lite": (1024, FLEXIBLE, 32_000, 1_000_000),
    "voyage-3-large": (1024, FLEXIBLE, 32_000, 120_000),
    "voyage-3.5": (1024, FLEXIBLE, 32_000, 320_000),
    "voyage-3.5-lite": (1024, FLEXIBLE, 32_000, 1_000_000),
    "voyage-code-3": (1024, FLEXIBLE, 32_000, 120_000),
    "voyage-finance-2": (1024, None, 32_000, 120_000),
    "voyage-law-2": (1024, None, 16_000, 120_000),
}
MAX_INPUTS = 1000
QUANTIZED_MODELS = {
    "voyage-4-large",
    "voyage-4",
    "voyage-4-lite",
    "voyage-3-large",
    "voyage-3.5",
    "voyage-3.5-lite",
    "voyage-code-3",
}
OUTPUT_DTYPES = {"int8": "int8", "uint8": "uint8", "binary": "binary", "ubinary": "ubinary"}
# A model the table does not know: the smallest per-request token total documented for any
# model, so a request is never refused for its size; its context length is the server's.
UNKNOWN_MODEL_TOKENS_PER_REQUEST = 120_000
INPUT_TYPES = {"query": "query", "document": "document"}  # other roles send none (no prompt)


class VoyageOptions(embedify.HTTPOptions):
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="Wire encoding: float lists, or base64 of float32 (smaller)."
    )


class VoyageEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "voyage"
    default_model_id = "voyage-3.5"
    options_class = VoyageOptions
    options: VoyageOptions
    default_base_url = "https://api.voyageai.com"
    version_paths = ("/v1",)
    api_key_variables = ("VOYAGE_API_KEY",)
    capabilities = embedify.Capabilities(
        limits=embedify.Limits(
            max_inputs_per_request=MAX_INPUTS,
            max_tokens_per_request=UNKNOWN_MODEL_TOKENS_PER_REQUEST,
        ),
        roles={
            "document": "input_type=document",
            "query": "input_type=query",
            "classification": "no input_type",
            "clustering": "no input_type",
        },
    )

    def configure(self) -> embedify.Capabilities:
        """A known model's dimensions, limits and output precisions; another model keeps the
        class's limits (the smallest documented) and learns its dimension."""
        known = KNOWN_MODELS.get(self.model_id)
        if known is None:
            return self.capabilities
        dimension, allowed, context, per_request = known
        return replace(
            self.capabilities,
            dimension=dimension,
            allowed_dimensions=allowed,
            dimensions_mode="native" if allowed is not None else "fixed",
            normalized=True,
            limits=embedify.Limits(
                max_inputs_per_request=MAX_INPUTS,
                max_tokens_per_request=per_request,
                max_tokens_per_input=context,
            ),
            precisions=("float32", *OUTPUT_DTYPES)
            if self.model_id in QUANTIZED_MODELS
            else self.capabilities.precisions,
            # Voyage cuts over-long inputs at the end when asked; at the start, the engine cuts.
            truncates=self.options.truncate == "end",
        )

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        body: dict[str, Any] = {
            "model": self.model_id,
            "input": texts,
            "input_type": INPUT_TYPES.get(role),
            # Only for "end": with "start" the engine cuts, and a text still too long for the
            # server comes back as an error naming it, which the engine shortens from the start.
            "truncation": self.options.truncate == "end",
        }
        if self.options.dimensions is not None:
            body["output_dimension"] = self.options.dimensions
        if self.quantized_by == "provider":
            body["output_dtype"] = OUTPUT_DTYPES[self.options.precision]
        elif self.options.encoding_format == "base64":
            body["encoding_format"] = "base64"
        answer = await self.request_json("POST", "/v1/embeddings", body)
        if not isinstance(answer, dict):
            raise errors.BadResponseError(f"{self!r} answered a {type(answer).__name__}")
        usage = answer.get("usage")
        if isinstance(usage, dict) and type(usage.get("total_tokens")) is int:
            embedify.observe_usage(usage["total_tokens"])  # the tokens Voyage charged
        ordered = ordered_embeddings(answer.get("data"), len(texts), source=repr(self))
        return vector_matrix(ordered, len(texts), source=repr(self))

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Voyage's 400 ``detail`` texts: request too large, an input too long, unknown model."""
        status, detail, text = response.status, response.message, response.text
        if status not in (400, 422):
            return None
        if _TOO_LARGE.search(detail):
            return errors.BatchTooLargeError(text, status=status)
        too_long = _TOO_LONG.search(detail)
        if too_long:
            return errors.InputTooLongError(text, status=status, index=int(too_long[1]))
        if _UNKNOWN_MODEL.search(detail):
            return errors.ModelNotFoundError(text, status=status)
        return None


# "The max allowed tokens per submitted batch is 120000. Your batch has 124302 tokens after
# truncation." (github.com/ramakay/claude-self-reflect/issues/38). The text for more than 1,000
# inputs is not published: "batch size" or pydantic's "List should have at most N items".
_TOO_LARGE = re.compile(
    r"max allowed tokens per submitted batch|batch size|list should have at most", re.IGNORECASE
)
# "The example at index 0 in your batch has too many tokens and does not fit into the model's
# context window of 32000 tokens." (github.com/latitude-dev/latitude-llm/pull/3554)
_TOO_LONG = re.compile(r"example at index (\d+) in your batch has too many tokens")
# "Model voyage-3 is not supported. Supported models are [...]" (a 400, quoted in public notes)
_UNKNOWN_MODEL = re.compile(r"^\s*model '?[^\s']+'? is not supported", re.IGNORECASE)
