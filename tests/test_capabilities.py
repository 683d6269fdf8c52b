"""A provider declares one frozen Capabilities value; configure() fixes it when the model is
built; the pre-Capabilities attributes keep working, with a warning, for one release."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import embedify
from embedify import Capabilities, ConfigurationError, Limits
from embedify.model import Role, Vectors

ROLES = {"document": "kind=doc", "query": "kind=query"}


class Declared(embedify.EmbeddingModel):
    provider = "declared"
    capabilities = Capabilities(
        dimension=6,
        dimensions_mode="matryoshka",
        limits=Limits(max_inputs_per_request=2),
        roles=ROLES,
        max_concurrency=3,
    )
    batches: list[int]

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        self.batches = [*getattr(self, "batches", []), len(texts)]
        return np.ones((len(texts), 6), np.float32)


SIZES = {"small": 4, "large": 8}


class PerModel(Declared):
    """Capabilities from a table of known models, read once in configure()."""

    configured = 0

    def configure(self) -> Capabilities:
        type(self).configured += 1
        if self.model_id not in SIZES:
            raise ConfigurationError(f"unknown model {self.model_id!r}; known: small, large")
        return replace(self.capabilities, dimension=SIZES[self.model_id])

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        return np.ones((len(texts), SIZES[self.model_id]), np.float32)


def test_the_engine_reads_the_declared_value() -> None:
    model = Declared("m")
    vectors = model.embed(["a", "b", "c", "d", "e"])
    assert vectors.shape == (5, 6)
    assert model.batches == [2, 2, 1]  # limits split the job
    info = model.info
    assert (info.dimension, info.dimensions_mode, info.max_concurrency) == (6, "matryoshka", 3)
    assert info.roles == ROLES
    assert Declared("m", dimensions=3).embed(["a"]).shape == (1, 3)  # cut here: matryoshka
    with pytest.raises(ConfigurationError, match="no 'clustering' role"):
        model.embed(["a"], role="clustering")


def test_configure_runs_once_when_the_model_is_built() -> None:
    PerModel.configured = 0
    model = PerModel("large", dimensions=5)
    assert PerModel.configured == 1
    assert model.capabilities.dimension == 8 and model.info.output_dimension == 5
    model.embed(["x"])
    assert PerModel.configured == 1
    with pytest.raises(ConfigurationError, match="unknown model 'medium'"):
        PerModel("medium")
    with pytest.raises(ConfigurationError, match="dimensions=9 is more than"):
        PerModel("large", dimensions=9)  # checked against what configure() returned


def test_capabilities_are_frozen_and_a_learned_width_replaces_them() -> None:
    class Learns(embedify.EmbeddingModel):
        def embed_batch(self, texts: list[str], role: Role) -> Vectors:
            return np.ones((len(texts), 5), np.float32)

    model = Learns("m")
    declared = model.capabilities
    with pytest.raises(dataclasses.FrozenInstanceError):
        declared.dimension = 3  # type: ignore[misc]
    model.embed(["x"])
    assert model.capabilities.dimension == 5 and declared.dimension is None
    assert Learns.capabilities.dimension is None  # the class's value is untouched
    assert model.info.learned_dimension


def test_old_attributes_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="declare capabilities") as declared:

        class Old(embedify.EmbeddingModel):
            dimension = 6
            supports_dimensions = True
            role_mapping = ROLES
            output_dtypes = ("float32", "int8")
            default_max_concurrency = 3

            def __init__(self, model_id: str | None = None, **options: Any) -> None:
                super().__init__(model_id, **options)
                self.limits = Limits(max_inputs_per_request=2)

            def embed_batch(self, texts: list[str], role: Role) -> Vectors:
                return np.ones((len(texts), self.options.dimensions or 6), np.float32)

    assert sorted(str(w.message).split("'")[1] for w in declared) == [
        "default_max_concurrency",
        "dimension",
        "output_dtypes",
        "role_mapping",
        "supports_dimensions",
    ]
    with pytest.warns(DeprecationWarning, match="Old sets 'limits'"):
        model = Old("m")
    assert model.capabilities == Capabilities(
        dimension=6,
        dimensions_mode="native",
        limits=Limits(max_inputs_per_request=2),
        roles=ROLES,
        precisions=("float32", "int8"),
        max_concurrency=3,
    )
    assert "dimension" not in Old.__dict__  # folded into Old.capabilities
    assert (model.dimension, model.supports_dimensions, model.matryoshka) == (6, True, False)
    assert model.limits.max_inputs_per_request == 2 and model.role_mapping == ROLES
    with pytest.warns(DeprecationWarning, match="Old sets 'limits'"):
        cut = Old("m", dimensions=4)
    assert cut.embed(["a"]).shape == (1, 4)  # sent natively: the provider returns 4


def test_a_blocking_provider_runs_as_many_calls_at_once_as_max_concurrency() -> None:
    """asyncio's shared pool has min(32, cpus + 4) threads. Forty calls that each wait for
    all forty finish only if the model has forty threads of its own."""
    import threading

    together = threading.Barrier(40, timeout=20)

    class Blocking(embedify.EmbeddingModel):
        capabilities = Capabilities(dimension=2)

        def embed_batch(self, texts: list[str], role: Role) -> Vectors:
            together.wait()  # a BrokenBarrierError fails the job unless all forty run at once
            return np.ones((len(texts), 2), np.float32)

    model = Blocking("m", max_concurrency=40, batch_size=1, max_retries=0)
    assert model.embed([f"t{i}" for i in range(40)]).shape == (40, 2)
