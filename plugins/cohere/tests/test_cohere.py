"""Cohere through the unmodified cohere SDK against a loopback /v2/embed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_cohere.testing import API_KEY, FakeCohere, vector_for

import embedify
from embedify.quantize import quantize
from embedify.testing import ConformanceSuite, LoopbackServer


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    for name in ("CO_API_KEY", "COHERE_API_KEY", "CO_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> FakeCohere:
    return FakeCohere()


@pytest.fixture
def server(fake: FakeCohere) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def cohere(server: LoopbackServer, name: str = "embed-english-v3.0", **options: Any) -> Any:
    return embedify.get_model(f"cohere:{name}", base_url=server.url, api_key=API_KEY, **options)


class TestCohereConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: cohere(server, "embed-v4.0", **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        wrong = embedify.get_model("cohere", base_url=server.url, api_key="wrong")
        unknown = cohere(server, "embed-nothing")
        too_long = cohere(server, truncate="error", max_concurrency=1)
        return [
            (lambda: wrong.embed(["x"]), embedify.AuthenticationError),
            (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: too_long.embed(["fine", "a " * 600]), embedify.InputTooLongError),
        ]


def test_an_unknown_model_claims_nothing_the_table_does_not_say() -> None:
    known = embedify.get_model("cohere:embed-v4.0", api_key=API_KEY).info
    unknown = embedify.get_model("cohere:embed-nothing", api_key=API_KEY).info
    assert (known.dimension, known.dimensions_mode, known.normalized) == (1536, "native", True)
    assert known.limits.max_tokens_per_input == 128_000
    assert (unknown.dimension, unknown.dimensions_mode, unknown.normalized) == (
        None,
        "fixed",
        False,
    )
    assert unknown.limits.max_tokens_per_input is None
    assert unknown.limits.max_inputs_per_request == known.limits.max_inputs_per_request == 96


def test_roles_reach_the_wire_as_input_type(server: LoopbackServer, fake: FakeCohere) -> None:
    model = cohere(server)
    for role in ("document", "query", "classification", "clustering"):
        vector = model.embed(["same text"], role)[0]
        assert (
            fake.log[-1]["body"]["input_type"]
            == embedify.get_model("cohere", api_key="k").role_mapping[role].split("=")[1]
        )
        expected = vector_for("embed-english-v3.0", fake.log[-1]["body"]["input_type"], "same text")
        assert np.allclose(vector, expected, atol=1e-6)


def test_a_thousand_texts_in_order_in_valid_requests(
    server: LoopbackServer, fake: FakeCohere
) -> None:
    texts = [f"passage number {i}" for i in range(1000)]
    result = cohere(server).embed_with_report(texts)
    expected = np.stack([vector_for("embed-english-v3.0", "search_document", t) for t in texts])
    assert np.allclose(result.vectors, expected, atol=1e-6)
    sizes = [len(entry["body"]["texts"]) for entry in fake.log]
    assert len(sizes) >= 11 and max(sizes) <= 96 and {e["status"] for e in fake.log} == {200}


def test_sdk_retries_are_off_and_429_is_retried_by_the_engine(fake: FakeCohere) -> None:
    fake.rate_limit_every = 2
    with LoopbackServer(fake) as server:
        result = cohere(server, max_concurrency=1, batch_size=5).embed_with_report(
            [f"t{i}" for i in range(20)]
        )
    assert result.report.rate_limited >= 1 and result.report.failed == 0
    assert len(fake.log) == result.report.requests


def test_output_dimension_and_int8(server: LoopbackServer, fake: FakeCohere) -> None:
    small = cohere(server, "embed-v4.0", dimensions=256).embed(["x"])
    assert small.shape == (1, 256) and fake.log[-1]["body"]["output_dimension"] == 256
    with pytest.raises(embedify.ConfigurationError, match="allowed: 256, 512, 1024, 1536"):
        cohere(server, "embed-v4.0", dimensions=300).embed(["x"])
    ints = cohere(server, precision="int8").embed(["x"])
    assert fake.log[-1]["body"]["embedding_types"] == ["int8"]
    assert ints.dtype == np.int8 and ints.shape == (1, 1024)
    packed = cohere(server, precision="ubinary").embed(["x"])
    assert fake.log[-1]["body"]["embedding_types"] == ["ubinary"]
    assert packed.dtype == np.uint8 and packed.shape == (1, 128)
    small_bits = cohere(server, "embed-v4.0", dimensions=256, precision="binary").embed(["x"])
    assert small_bits.dtype == np.int8 and small_bits.shape == (1, 32)


def test_native_codes_are_cohere_s_own(server: LoopbackServer, fake: FakeCohere) -> None:
    """Cohere's binary is the sign bits of its float vector: the same bits as quantizing the
    float answer here, so the native path sends embedding_types and keeps the answer as is."""
    model = cohere(server)
    floats = model.embed(["a text", "another"])
    native = cohere(server, precision="binary").embed(["a text", "another"])
    assert fake.log[-1]["body"]["embedding_types"] == ["binary"]
    assert cohere(server, precision="binary").info.quantized_by == "provider"
    assert np.array_equal(native, quantize(floats, "binary"))


def test_embedding_type_still_works_as_precision(server: LoopbackServer, fake: FakeCohere) -> None:
    with pytest.warns(DeprecationWarning, match="precision="):
        model = cohere(server, embedding_type="uint8")
    assert model.options.precision == "uint8" and model.embed(["x"]).dtype == np.uint8
    assert fake.log[-1]["body"]["embedding_types"] == ["uint8"]


def test_truncate_maps_to_cohere(server: LoopbackServer, fake: FakeCohere) -> None:
    result = cohere(server, truncate="start").embed_with_report(["word " * 2000])
    assert fake.log[-1]["body"]["truncate"] == "START" and result.report.truncated == [0]


def test_environment_key_order(
    server: LoopbackServer, fake: FakeCohere, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHERE_API_KEY", API_KEY)
    monkeypatch.setenv("CO_API_URL", server.url)
    assert embedify.get_model("cohere").embed(["x"]).shape == (1, 1024)
    monkeypatch.setenv("CO_API_KEY", "wrong")  # CO_API_KEY wins
    with pytest.raises(embedify.EmbeddingJobError):
        embedify.get_model("cohere").embed(["x"])


@pytest.mark.parametrize("suffix", ["", "/v1", "/v2/"])
def test_base_url_with_or_without_a_version(
    server: LoopbackServer, fake: FakeCohere, suffix: str
) -> None:
    model = embedify.get_model("cohere", base_url=server.url + suffix, api_key=API_KEY)
    assert model.embed(["x"]).shape == (1, 1024) and fake.log[-1]["path"] == "/v2/embed"
    assert model.endpoint == server.url


def test_a_wrong_path_names_the_url_not_the_model(server: LoopbackServer) -> None:
    wrong = embedify.get_model("cohere", base_url=f"{server.url}/api", api_key=API_KEY)
    with pytest.raises(embedify.ConfigurationError) as caught:
        wrong.embed(["x"])
    assert f"{server.url}/api/v2/embed answered 404" in str(caught.value)


def test_missing_key_names_both_variables() -> None:
    with pytest.raises(embedify.ConfigurationError, match="set CO_API_KEY or COHERE_API_KEY"):
        embedify.get_model("cohere").embed(["x"])
