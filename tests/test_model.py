"""The provider protocol: options, capabilities, custom models, input checks, secrets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import embedify
from embedify.errors import ConfigurationError
from embedify.fake import FakeEmbeddingModel


class InstructorEmbeddings(embedify.EmbeddingModel):
    """The seed's custom-model example, as an embedify subclass (with a stand-in encoder)."""

    provider = "my-instructor"
    default_model_id = "hkunlp/instructor-large"
    dimension = 16

    def __init__(
        self,
        model_id: str | None = None,
        instruction: str = "Represent the Computer Science documentation or question:",
        **options: Any,
    ) -> None:
        super().__init__(model_id, **options)
        self.instruction = instruction
        self._encoder = FakeEmbeddingModel("16")  # stands in for INSTRUCTOR(model_id)

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        return self._encoder.embed_batch([f"{self.instruction} {t}" for t in texts], role)


def test_seed_custom_model_is_a_small_subclass() -> None:
    embedify.register_model("my-instructor", InstructorEmbeddings)
    model = embedify.get_model("my-instructor", instruction="Represent the Biology sentence:")
    vector = model.embed("It is raining cats and dogs here!")  # the seed's standalone call
    assert vector.shape == (16,)
    other = InstructorEmbeddings().embed("It is raining cats and dogs here!")
    assert not np.allclose(vector, other)  # the instruction matters


def test_a_model_must_implement_one_method() -> None:
    with pytest.raises(TypeError, match="embed_batch or aembed_batch"):
        type("Nothing", (embedify.EmbeddingModel,), {})


def test_bad_options_get_clear_messages() -> None:
    with pytest.raises(ConfigurationError, match="dimensionz: not an option"):
        embedify.get_model("fake", dimensionz=3)
    with pytest.raises(ConfigurationError, match="batch_size: Input should be greater than 0"):
        embedify.get_model("fake", batch_size=0)
    with pytest.raises(
        ConfigurationError, match="truncate: Input should be 'error', 'end' or 'start'"
    ):
        embedify.get_model("fake", truncate="middle")


def test_fixed_dimension_models_refuse_dimensions() -> None:
    class Fixed(FakeEmbeddingModel):
        matryoshka = False

    with pytest.raises(ConfigurationError, match="not a Matryoshka model"):
        Fixed("32", dimensions=8).embed(["x"])


def test_matryoshka_dimensions_are_cut_and_renormalised() -> None:
    full = embedify.get_model("fake:32").embed(["hello world"])[0]
    short = embedify.get_model("fake:32", dimensions=8).embed(["hello world"])[0]
    assert np.isclose(np.linalg.norm(short), 1.0)
    assert np.allclose(short, full[:8] / np.linalg.norm(full[:8]), atol=1e-6)


def test_capabilities_are_known_before_the_first_call() -> None:
    info = embedify.get_model("fake:32", max_concurrency=3).info
    assert (info.dimension, info.max_concurrency, info.dimensions_mode) == (32, 3, "matryoshka")
    assert info.limits.max_inputs_per_request == 256 and set(info.roles) >= {"document", "query"}


def test_input_mistakes_name_the_input() -> None:
    model = embedify.get_model("fake")
    with pytest.raises(ConfigurationError, match="input 1 is empty"):
        model.embed(["fine", "  "])
    with pytest.raises(TypeError, match="input 0 is a int"):
        model.embed([3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not one string"):
        model.embed_documents("a whole document")


def test_secrets_never_show() -> None:
    class Remote(FakeEmbeddingModel):
        options_class = embedify.RemoteOptions

    model = Remote("8", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(model.options) + str(model.options) + repr(model)
    assert model.options.api_key is not None
    assert model.options.api_key.get_secret_value() == "sk-very-secret"


def test_normalize_option() -> None:
    class Raw(embedify.EmbeddingModel):
        dimension = 2

        def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
            return np.array([[3.0, 4.0]] * len(texts), dtype=np.float32)

    assert np.allclose(Raw("r").embed(["x"]), [[3, 4]])
    assert np.allclose(Raw("r", normalize=True).embed(["x"]), [[0.6, 0.8]])
