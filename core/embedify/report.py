"""What a job did: per input, and in requests, retries and tokens.

Its own module because both the engine (which fills reports) and ``errors`` (whose
``EmbeddingJobError`` carries one) need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Vectors = np.ndarray[Any, np.dtype[np.float32]]


@dataclass
class ItemReport:
    """What happened to one input."""

    cached: bool = False
    truncated: bool = False
    tokens: int = 0
    duplicate_of: int | None = None
    failed: bool = False


@dataclass
class Report:
    """What a job did: per item, and in requests, retries and tokens.

    ``retries`` counts requests sent again after an error or a 429 (only those actually sent);
    ``rate_limited`` counts 429 answers; ``splits`` counts requests cut into smaller ones.
    """

    items: list[ItemReport]
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    exact_tokens: bool = False

    @property
    def cached(self) -> int:
        return sum(item.cached for item in self.items)

    @property
    def embedded(self) -> int:
        return sum(
            not (item.cached or item.failed or item.duplicate_of is not None) for item in self.items
        )

    @property
    def deduplicated(self) -> int:
        return sum(item.duplicate_of is not None for item in self.items)

    @property
    def truncated(self) -> list[int]:
        return [index for index, item in enumerate(self.items) if item.truncated]

    @property
    def failed(self) -> int:
        return sum(item.failed for item in self.items)

    @property
    def tokens(self) -> int:
        """Tokens sent to the provider (exact when ``exact_tokens``, else an estimate)."""
        return sum(
            item.tokens
            for item in self.items
            if not (item.cached or item.failed or item.duplicate_of is not None)
        )

    def summary(self) -> str:
        return (
            f"{len(self.items)} inputs: {self.embedded} embedded, {self.cached} from cache, "
            f"{self.deduplicated} duplicates, {len(self.truncated)} truncated, "
            f"{self.failed} failed; "
            f"{self.requests} requests, {self.retries} retries ({self.rate_limited} rate-limited), "
            f"{'' if self.exact_tokens else '~'}{self.tokens} tokens"
        )


@dataclass
class EmbeddingResult:
    """Vectors in input order, and the report of the job that made them."""

    vectors: Vectors
    report: Report
