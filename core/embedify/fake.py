"""A deterministic, dependency-free test double: ``get_model("fake")``.

Its vectors are NOT embeddings: each is derived from a hash of the text's words, so equal
texts give equal vectors, texts sharing words are somewhat similar, and nothing about meaning
is captured. Use it in tests and examples where a real model would be slow or need a network.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import ClassVar

import numpy as np
from pydantic import Field

from embedify.capabilities import Capabilities, Limits
from embedify.errors import ConfigurationError
from embedify.model import EmbeddingModel, ModelOptions, Role, Vectors

_WORD = re.compile(r"\w+")


class FakeOptions(ModelOptions):
    max_concurrency: int | None = Field(1, gt=0, description="Most requests in flight.")


class FakeEmbeddingModel(EmbeddingModel):
    """Hashed bag of words. The model id is the dimension: ``fake:64``."""

    provider: ClassVar[str] = "fake"
    default_model_id: ClassVar[str | None] = "64"
    options_class = FakeOptions
    capabilities = Capabilities(
        dimensions_mode="matryoshka",
        normalized=True,
        limits=Limits(max_inputs_per_request=256, max_tokens_per_input=512),
        roles={
            "document": "prefix 'document:'",
            "query": "prefix 'query:'",
            "classification": "prefix 'classification:'",
            "clustering": "prefix 'clustering:'",
        },
    )

    def configure(self) -> Capabilities:
        if not self.model_id.isdigit() or int(self.model_id) < 1:
            raise ConfigurationError(
                f"fake's model id is its dimension, a whole number >= 1 like 'fake:64'; "
                f"got {self.model_id!r}."
            )
        return replace(self.capabilities, dimension=int(self.model_id))

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        dimension = int(self.model_id)
        vectors = np.zeros((len(texts), dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in [role, *_WORD.findall(text.lower())]:
                seed = int.from_bytes(
                    hashlib.blake2b(word.encode(), digest_size=8).digest(), "little"
                )
                vectors[row] += np.random.default_rng(seed).standard_normal(dimension)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors
