"""How a batch the server formed reaches the model. The server's batcher is the one scheduler.

A local model (it computes in this process: it has no native async call) gets each batch as it
is, in one call of its batch method. The batcher already keeps batches within the model's
limits and runs as many at once as the model allows; planning, pacing and retrying them again
would only cut the batch into smaller requests. The answer is checked as the engine checks any:
one finite row per input, every batch as wide as the first.

A remote upstream (``openai:``, ``tei:``: a native async call) goes through the engine, whose
pacing, 429 retries and splits the upstream's limits need. So does a local model whose options
ask the engine to shape or keep its vectors (``dimensions``, ``normalize``, ``precision``,
``cache``), so that this work stays in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

import embedify
from embedify.errors import ConfigurationError, EmbeddingJobError, PermanentError, ProviderError
from embedify.responses import vector_matrix

#: The vectors of a batch (rows of failed inputs unset), and the failed rows' errors.
Answer = tuple[np.ndarray, dict[int, BaseException]]


class Upstream(Protocol):
    async def warm_up(self) -> None:
        """Load the model before the first request is accepted."""

    async def embed(self, texts: Sequence[str], role: str) -> Answer:
        """Embed one batch; a failure of the whole batch raises."""


def upstream_for(model: embedify.EmbeddingModel) -> Upstream:
    options = model.options
    shaped_by_engine = (
        options.dimensions is not None
        or bool(options.normalize)
        or options.precision != "float32"
        or bool(options.cache)
    )
    if model.info.native_async or shaped_by_engine:
        return ThroughEngine(model)
    return LocalModel(model)


class LocalModel:
    """One call of the model's batch method per batch."""

    def __init__(self, model: embedify.EmbeddingModel) -> None:
        self.model = model
        self.width = model.dimension  # learned from the first answer when not declared

    async def warm_up(self) -> None:
        await self.model.prepare()
        await self.embed(["warm-up"], "document")

    async def embed(self, texts: Sequence[str], role: str) -> Answer:
        try:
            raw = await self.model.aembed_batch(list(texts), role)  # type: ignore[arg-type]
        except (ProviderError, ConfigurationError):
            raise
        except Exception as error:  # a model's bug fails its requests, not the server
            raise PermanentError(
                f"{self.model!r} raised {type(error).__name__}: {error}"
            ) from error
        vectors = vector_matrix(raw, len(texts), source=repr(self.model), width=self.width)
        if self.width is None:
            self.width = int(vectors.shape[1])
            self.model.learn_dimension(self.width)
        return vectors, {}


class ThroughEngine:
    """The whole engine per batch: a job of the batch's inputs."""

    def __init__(self, model: embedify.EmbeddingModel) -> None:
        self.model = model

    async def warm_up(self) -> None:
        await self.model.aembed_with_report(["warm-up"])

    async def embed(self, texts: Sequence[str], role: str) -> Answer:
        try:
            result = await self.model.aembed_with_report(texts, role)  # type: ignore[arg-type]
        except EmbeddingJobError as error:
            return error.partial, dict(error.failures)
        return result.vectors, {}
