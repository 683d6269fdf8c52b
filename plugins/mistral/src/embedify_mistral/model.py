"""``mistral:<model>``: Mistral AI's ``POST /v1/embeddings`` over httpx, on :mod:`embedify.http`.

Facts from Mistral's reference:

- ``POST https://api.mistral.ai/v1/embeddings`` with ``Authorization: Bearer``; the request
  holds ``model``, ``input`` (a list of strings), ``output_dimension``, ``output_dtype`` and
  ``encoding_format`` (``float`` or ``base64``); the answer ``data[{index, embedding}]`` and
  ``usage.prompt_tokens``: https://docs.mistral.ai/api/endpoint/embeddings, and the official
  client's ``models/embeddingrequest.py`` and ``encodingformat.py`` (mistralai/client-python).
- mistral-embed returns 1024 dimensions, fixed:
  https://docs.mistral.ai/capabilities/embeddings/text_embeddings
- codestral-embed: ``output_dimension`` defaults to 1536, at most 3072, its dimensions ordered
  by relevance, and ``output_dtype`` float, int8, uint8, binary or ubinary (packed bits, a byte
  per 8 dimensions), which ``precision`` maps to:
  https://docs.mistral.ai/capabilities/embeddings/code_embeddings
- Errors are ``{"object": "error", "message", "type", "param", "code"}``; 401 a bad key, 403 a
  model outside the account's tier, 422 validation, 429 a rate limit:
  https://docs.mistral.ai/resources/error-glossary
- No roles: the endpoint has no input-type parameter, so queries and documents embed alike.

Not in the reference, so taken from reports of the live API (and kept conservative):

- 8192 tokens per input (langchain-ai/langchain#20523: 8190 tokens pass, 8192 fail).
- 16384 tokens per request: "Too many tokens in batch. Max is 16384 got 17555"
  (aurelio-labs/semantic-router#297), now "Too many tokens overall, split into more batches.",
  code 3210 (chroma-core/chroma#5597). Assumed to hold for codestral-embed too.
- Inputs per request: "Too many inputs in request, split into more batches.", code 3210;
  reports say 128 (continuedev/continue#2418), 256 or 512 (raphaelmansuy/edgequake-llm#74).
  We declare 128, the lowest: with 16384 tokens per request it binds only for inputs under
  128 tokens, so it costs little and never trips the server.
- An unknown model: 400 ``"type": "invalid_model"``, "Invalid model: ..." (tmc/langchaingo#1233;
  the glossary's example says ``"code": "unknown_model"``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.quantize import width
from embedify.responses import ordered_embeddings, vector_matrix

MAX_INPUTS_PER_REQUEST = 128
MAX_TOKENS_PER_REQUEST = 16384
MAX_TOKENS_PER_INPUT = 8192
KNOWN_MODELS: dict[str, tuple[int, int | None]] = {
    # name: (dimension when output_dimension is not sent, largest output_dimension or None)
    "mistral-embed": (1024, None),
    "codestral-embed": (1536, 3072),
}
ALIASES = {"mistral-embed-2312": "mistral-embed", "codestral-embed-2505": "codestral-embed"}
NO_ROLES = "no input type (Mistral has none)"


class MistralOptions(embedify.HTTPOptions):
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="Wire encoding of the vectors (base64: little-endian float32)."
    )


class MistralEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "mistral"
    default_model_id = "mistral-embed"
    options_class = MistralOptions
    options: MistralOptions
    default_base_url = "https://api.mistral.ai"
    version_paths = ("/v1",)
    api_key_variables = ("MISTRAL_API_KEY",)
    # An unknown model: its dimension is learnt from the first answer, and the server judges
    # output_dimension.
    capabilities = embedify.Capabilities(
        dimensions_mode="native",
        roles={"document": NO_ROLES, "query": NO_ROLES},
        limits=embedify.Limits(
            max_inputs_per_request=MAX_INPUTS_PER_REQUEST,
            max_tokens_per_request=MAX_TOKENS_PER_REQUEST,
            max_tokens_per_input=MAX_TOKENS_PER_INPUT,
        ),
    )

    def configure(self) -> embedify.Capabilities:
        known = _known(self.model_id)
        if known is None:
            return self.capabilities
        dimension, largest = known
        if largest is None:
            return replace(self.capabilities, dimension=dimension, dimensions_mode="fixed")
        # codestral-embed quantizes its own output
        precisions = ("float32", "int8", "uint8", "binary", "ubinary")
        return replace(self.capabilities, dimension=dimension, precisions=precisions)

    @property
    def max_dimension(self) -> int | None:
        """The largest ``output_dimension``; None: fixed or unknown."""
        known = _known(self.model_id)
        return known[1] if known else None

    def dimensions_problem(self) -> str | None:
        """codestral-embed serves any ``output_dimension`` up to its maximum, past its
        default; mistral-embed's 1024 are fixed (refused by the base, before any request)."""
        requested, largest = self.options.dimensions, self.max_dimension
        if requested is None or largest is None:
            return super().dimensions_problem()
        if requested > largest:
            return f"{self!r} offers dimensions up to {largest}, not {requested}."
        return None

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        body: dict[str, Any] = {
            "model": self.model_id,
            "input": texts,
            "encoding_format": self.options.encoding_format,
        }
        if self.options.dimensions is not None:
            body["output_dimension"] = self.options.dimensions
        if self.quantized_by == "provider":  # codes come as JSON lists of whole numbers
            body["output_dtype"], body["encoding_format"] = self.options.precision, "float"
        answer = await self.request_json("POST", "/v1/embeddings", body)
        if not isinstance(answer, dict):
            raise errors.BadResponseError(f"{self!r}: the answer is not a JSON object")
        usage = answer.get("usage")
        if isinstance(usage, dict) and type(usage.get("prompt_tokens")) is int:
            embedify.observe_usage(usage["prompt_tokens"])  # paces by what the key was charged
        ordered = ordered_embeddings(answer.get("data"), len(texts), source=repr(self))
        return vector_matrix(ordered, len(texts), source=repr(self), width=self.output_width)

    @property
    def output_width(self) -> int | None:
        dimension = self.options.dimensions or self.capabilities.dimension
        if dimension is None or self.quantized_by != "provider":
            return dimension
        return width(dimension, self.options.precision)

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Mistral's ``message``/``type``/``code``: request size, input length, unknown model."""
        status, message, text = response.status, response.message, response.text
        body = response.body if isinstance(response.body, dict) else {}
        if _TOO_LARGE.search(message):
            return errors.BatchTooLargeError(text, status=status)
        if status in (400, 422) and _TOO_LONG.search(message):
            found = _TOKENS.search(message)
            tokens = int(found.group(1)) if found else None
            return errors.InputTooLongError(text, status=status, tokens=tokens)
        if (
            body.get("type") == "invalid_model"
            or body.get("code") == "unknown_model"
            or message.startswith("Invalid model")
        ):
            return errors.ModelNotFoundError(text, status=status)
        return None


def _known(model_id: str) -> tuple[int, int | None] | None:
    """``model_id``'s row of :data:`KNOWN_MODELS` (aliases included); None: unknown."""
    return KNOWN_MODELS.get(ALIASES.get(model_id, model_id))


_TOO_LARGE = re.compile(r"Too many (inputs|tokens) (in request|in batch|overall)", re.IGNORECASE)
_TOO_LONG = re.compile(r"too long|exceed\w* (the )?max|context length", re.IGNORECASE)
_TOKENS = re.compile(r"has (\d+) tokens")
