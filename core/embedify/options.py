"""The options every model accepts, as a user sets them (``get_model(name, **options)``),
and the one message that explains a wrong one. Providers extend these classes."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from embedify.quantize import Precision

Truncate = Literal["error", "end", "start"]


class ModelOptions(BaseModel):
    """Options every model accepts. Providers extend this class with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    dimensions: int | None = Field(None, gt=0, description="Output dimension.")
    normalize: bool | None = Field(
        None, description="L2-normalise outputs; None keeps the model's own behaviour."
    )
    batch_size: int | None = Field(
        None, gt=0, description="Most inputs per request (LlamaIndex's embed_batch_size)."
    )
    max_concurrency: int | None = Field(None, gt=0, description="Most requests in flight.")
    truncate: Truncate = Field(
        "end", description="Over-long inputs: 'error', or cut at the 'end' or the 'start'."
    )
    timeout: float | None = Field(60.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(
        6, ge=0, description="Retries of an error (5xx, timeout, dropped connection); 429s apart."
    )
    rate_limit_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds of 429s with no successful request before a job fails.",
    )
    requests_per_minute: float | None = Field(None, gt=0, description="Client-side RPM budget.")
    tokens_per_minute: float | None = Field(None, gt=0, description="Client-side TPM budget.")
    cache: bool | Path | None = Field(
        None, description="True for the user cache, a path for a cache file, None for no cache."
    )
    show_progress: bool = Field(False, description="Show a progress bar for long jobs.")
    precision: Precision = Field(
        "float32",
        description="float32, int8/uint8 (a byte a dimension) or binary/ubinary (a bit, packed): "
        "the provider's own where it offers it, else quantized here (embedify.quantize).",
    )
    calibration: list[str] | None = Field(
        None,
        description="Texts like yours, for the int8/uint8 ranges of a model quantized here; "
        "None: the built-in set.",
    )


class RemoteOptions(ModelOptions):
    """Options of every model served over the network."""

    api_key: SecretStr | None = Field(None, description="Secret key; never printed or logged.")
    base_url: str | None = Field(
        None, description="Server URL, for proxies and compatible servers."
    )
    # 120 s outlasts a per-minute rate-limit window, so those are waited out; a server asking
    # for more (a daily quota, a hostile or broken header) fails the call at once instead of
    # holding it for hours. At most a day.
    max_retry_wait: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="Longest wait a server may ask for (Retry-After, rate-limit resets), in "
        "seconds; a longer one fails the call at once with a RateLimitError.",
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value


def explain_options(owner: str, error: ValidationError, known: Sequence[str]) -> str:
    """One line per problem; an unknown option gets the close ones the model has
    (``dimesions`` -> ``dimensions``)."""
    lines = [f"Invalid options for {owner}:"]
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "options"
        if problem["type"] == "extra_forbidden":
            close = difflib.get_close_matches(where, known, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            lines.append(f"  {where}: not an option of this model{hint}")
        else:
            lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)
