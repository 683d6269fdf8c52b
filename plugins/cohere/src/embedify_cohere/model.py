"""``cohere:<model>``: Cohere's ``/v2/embed`` through the official async SDK (``AsyncClientV2``).

The v2 client does not batch, so the engine's 96-texts-per-request limit is what keeps requests
valid; its retries are off so the engine owns them. Roles become ``input_type``; ``precision``
becomes ``embedding_types`` (Cohere returns int8/uint8 codes and packed bits itself).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

from pydantic import Field, model_validator

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.quantize import PRECISIONS
from embedify.responses import vector_matrix

KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "embed-v4.0": {"dimension": 1536, "dimensions": (256, 512, 1024, 1536), "tokens": 128_000},
    "embed-english-v3.0": {"dimension": 1024, "dimensions": None, "tokens": 512},
    "embed-multilingual-v3.0": {"dimension": 1024, "dimensions": None, "tokens": 512},
    "embed-english-light-v3.0": {"dimension": 384, "dimensions": None, "tokens": 512},
    "embed-multilingual-light-v3.0": {"dimension": 384, "dimensions": None, "tokens": 512},
}
INPUT_TYPES = {
    "document": "search_document",
    "query": "search_query",
    "classification": "classification",
    "clustering": "clustering",
}
TRUNCATE = {"error": "NONE", "end": "END", "start": "START"}


class CohereOptions(embedify.HTTPOptions):
    client_name: str | None = Field(None, description="X-Client-Name header.")

    @model_validator(mode="before")
    @classmethod
    def _embedding_type_is_precision(cls, values: Any) -> Any:
        """``embedding_type=`` (before 0.2) is ``precision=`` now; it still works, warning."""
        if isinstance(values, dict) and "embedding_type" in values:
            values = dict(values)
            kind = values.pop("embedding_type")
            warnings.warn(
                "cohere's embedding_type= is now precision= (float is 'float32')",
                DeprecationWarning,
                stacklevel=2,
            )
            values.setdefault("precision", "float32" if kind == "float" else kind)
        return values


class CohereEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "cohere"
    default_model_id = "embed-english-v3.0"
    options_class = CohereOptions
    options: CohereOptions
    capabilities = embedify.Capabilities(
        limits=embedify.Limits(max_inputs_per_request=96),
        roles={role: f"input_type={value}" for role, value in INPUT_TYPES.items()},
        precisions=PRECISIONS,
        truncates=True,  # the server cuts per `truncate` (END/START) and says nothing
    )
    default_base_url = "https://api.cohere.com"
    base_url_variables = ("CO_API_URL",)  # the SDK reads it at import time; we read it now
    version_paths = ("/v1", "/v2")
    api_key_variables = ("CO_API_KEY", "COHERE_API_KEY")
    status_errors = {
        **embedify.HTTPEmbeddingModel.status_errors,
        498: errors.AuthenticationError,  # invalid token
        499: errors.TransientError,  # request cancelled
    }

    def configure(self) -> embedify.Capabilities:
        """A known model's dimension, ``output_dimension`` values and context length; another
        model's are learned or the server's."""
        known = KNOWN_MODELS.get(self.model_id, {})
        allowed = known.get("dimensions")
        return replace(
            self.capabilities,
            dimension=known.get("dimension"),
            allowed_dimensions=allowed,
            dimensions_mode="native" if allowed is not None else "fixed",
            normalized=bool(known),
            limits=self.capabilities.limits.model_copy(
                update={"max_tokens_per_input": known.get("tokens")}
            ),
        )

    def make_client(self) -> Any:
        import cohere

        return cohere.AsyncClientV2(
            api_key=self.api_key(),
            base_url=self.base_url,
            client_name=self.options.client_name,
            timeout=self.options.timeout,
            max_retries=0,
            # the SDK's own client follows redirects, with default_headers, to any origin
            httpx_client=self.httpx_client(),
        )

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        import httpx
        from cohere.core.api_error import ApiError

        extra: dict[str, Any] = {}
        if self.options.dimensions is not None:
            extra["output_dimension"] = self.options.dimensions
        kind = "float" if self.options.precision == "float32" else self.options.precision
        url = f"{self.base_url}/v2/embed"
        try:
            raw = await self.client().with_raw_response.embed(
                model=self.model_id,
                texts=texts,
                input_type=INPUT_TYPES[role],
                embedding_types=[kind],
                truncate=TRUNCATE[self.options.truncate],
                request_options={"additional_headers": self.default_headers(), "max_retries": 0},
                **extra,
            )
        except ApiError as error:
            if error.status_code is None or error.status_code < 300:  # a 2xx that is not JSON
                raise errors.BadResponseError(
                    self.redact(f"unreadable answer from {url}: is base_url a Cohere API?")
                ) from None
            headers = error.headers or {}
            raise self.response_error(error.status_code, headers, error.body, url) from None
        except httpx.TransportError as error:
            raise self.transport_error(error) from None
        except (TypeError, ValueError):  # JSON the SDK cannot read as an answer (a list, a str)
            raise errors.BadResponseError(
                self.redact(f"unreadable answer from {url}: is base_url a Cohere API?")
            ) from None
        self.check_response(raw.status_code, raw.headers, None, url)
        try:  # the wire's values: the SDK's model would turn a hostile true into 1
            vectors = raw.response.json()["embeddings"][kind]
        except (ValueError, KeyError, TypeError):
            raise errors.BadResponseError(f"{self!r} returned no {kind!r} embeddings") from None
        return vector_matrix(vectors, len(texts), source=repr(self))  # no index: count, width

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Cohere's ``message`` texts: the 96-text cap, input length, monthly limits, models."""
        status, text = response.status, response.text
        lowered = response.message.lower()
        if status == 400 and "must be at most" in lowered:
            return errors.BatchTooLargeError(text, status=status)
        if status == 400 and (
            "too long" in lowered or ("exceeds" in lowered and "token" in lowered)
        ):
            return errors.InputTooLongError(text, status=status)
        if status == 429 and "per month" in lowered:
            return errors.QuotaExceededError(text, status=status)
        if status == 404 and lowered.startswith("model "):
            return errors.ModelNotFoundError(text, status=status)
        return None
