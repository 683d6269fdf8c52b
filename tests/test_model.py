"""The provider protocol: options, capabilities, custom models, input checks, secrets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import embedify
from embedify.errors import ConfigurationError, InvalidInputError
from embedify.fake import FakeEmbeddingModel


class InstructorEmbeddings(embedify.EmbeddingModel):
    """The seed's custom-model example, as an embedify subclass (with a stand-in encoder)."""

    provider = "my-instructor"
    default_model_id = "hkunlp/instructor-large"
    capabilities = embedify.Capabilities(dimension=16)

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


def test_fixed_dimension_models_refuse_dimensions_when_built() -> None:
    class Fixed(FakeEmbeddingModel):
        capabilities = replace(FakeEmbeddingModel.capabilities, dimensions_mode="fixed")

    with pytest.raises(ConfigurationError, match="not a Matryoshka model"):
        Fixed("32", dimensions=8)


class Offers(FakeEmbeddingModel):
    capabilities = replace(FakeEmbeddingModel.capabilities, allowed_dimensions=(8, 16))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Offers("32", dimensions=12), "does not offer dimensions=12"),
        (lambda: embedify.get_model("fake:32", dimensions=3000), "dimensions=3000 is more"),
        (lambda: embedify.get_model("fake:0"), "a whole number >= 1"),
        (lambda: embedify.get_model("fake", max_concurrency=-1), "max_concurrency"),
        (lambda: embedify.get_model("fake", rate_limit_timeout=0), "rate_limit_timeout"),
    ],
)
def test_options_are_checked_when_the_model_is_built(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_an_unusable_cache_path_is_refused_when_the_model_is_built(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"cache=.*is a folder"):
        embedify.get_model("fake", cache=tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match=r"cache=.*cannot create the folder"):
        embedify.get_model("fake", cache=blocker / "cache.sqlite3")


def test_info_never_reports_a_dimension_the_model_cannot_give() -> None:
    assert embedify.get_model("fake:32", dimensions=8).info.output_dimension == 8
    with pytest.raises(ConfigurationError):
        embedify.get_model("fake:32", dimensions=64)


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
    with pytest.raises(InvalidInputError, match="input 1 is empty"):
        model.embed(["fine", "  "])
    with pytest.raises(TypeError, match="input 0 is a int"):
        model.embed([3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="input 0 is bytes; decode it first"):
        model.embed([b"raw"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="set, which has no defined order"):
        model.embed({"a", "b"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="input 0 holds a lone surrogate"):
        model.embed(["bad \udc80"])
    with pytest.raises(TypeError, match="not one string"):
        model.embed_documents("a whole document")
    with pytest.raises(InvalidInputError, match="use embed_documents"):
        model.embed_query(["two", "queries"])  # type: ignore[arg-type]


async def test_as_list_on_every_embedding_method() -> None:
    model = embedify.get_model("fake:8")
    one, many = "a text", ["a text", "another"]
    results = [
        model.embed(one, as_list=True),
        model.embed(many, as_list=True),
        model.embed_documents(many, as_list=True),
        model.embed_query(one, as_list=True),
        await model.aembed(many, as_list=True),
        await model.aembed_documents(many, as_list=True),
        await model.aembed_query(one, as_list=True),
    ]
    for result in results:
        assert isinstance(result, list)
        assert all(isinstance(x, float) for x in np.ravel(np.array(result, dtype=object)))
    assert np.allclose(results[3], model.embed_query(one))


def test_secrets_never_show() -> None:
    class Remote(FakeEmbeddingModel):
        options_class = embedify.RemoteOptions

    model = Remote("8", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(model.options) + str(model.options) + repr(model)
    assert model.options.api_key is not None
    assert model.options.api_key.get_secret_value() == "sk-very-secret"


def test_normalize_option() -> None:
    class Raw(embedify.EmbeddingModel):
        capabilities = embedify.Capabilities(dimension=2)

        def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
            return np.array([[3.0, 4.0]] * len(texts), dtype=np.float32)

    assert np.allclose(Raw("r").embed(["x"]), [[3, 4]])
    assert np.allclose(Raw("r", normalize=True).embed(["x"]), [[0.6, 0.8]])


def test_a_provider_must_implement_a_batch_method_a_base_need_not() -> None:
    class SharedPlumbing(embedify.EmbeddingModel, abstract=True):
        provider = "plumbing"

    with pytest.raises(TypeError, match="must implement embed_batch or aembed_batch"):

        class Forgot(SharedPlumbing):
            provider = "forgot"

    class Works(SharedPlumbing):
        provider = "works"
        capabilities = embedify.Capabilities(dimension=2)

        def embed_batch(self, texts: list[str], role: embedify.Role) -> Any:
            return [[1.0, 0.0]] * len(texts)

    assert Works("m").embed(["a"]).shape == (1, 2)
