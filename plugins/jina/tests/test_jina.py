"""Jina through httpx against a loopback Jina server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_jina.testing import API_KEY, FakeJina, vector_for

import embedify
from embedify.quantize import quantize
from embedify.testing import ConformanceSuite, LoopbackServer


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("JINA_API_KEY", raising=False)


@pytest.fixture
def fake() -> FakeJina:
    return FakeJina()


@pytest.fixture
def server(fake: FakeJina) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def jina(server: LoopbackServer, name: str = "jina-embeddings-v3", **options: Any) -> Any:
    return embedify.get_model(f"jina:{name}", base_url=server.url, api_key=API_KEY, **options)


class TestJinaConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: jina(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        wrong = embedify.get_model("jina", base_url=server.url, api_key="wrong")
        unknown = jina(server, "jina-nothing")
        strict = jina(server, truncate="error")
        return [
            (lambda: wrong.embed(["x"]), embedify.AuthenticationError),
            (lambda: unknown.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: strict.embed(["w " * 9000]), embedify.InputTooLongError),
        ]


def test_query_and_document_tasks_differ_on_the_wire(
    server: LoopbackServer, fake: FakeJina
) -> None:
    model = jina(server)
    query = model.embed_query("what is late chunking?")
    document = model.embed_documents(["late chunking embeds a document in one pass"])[0]
    tasks = [entry["body"]["task"] for entry in fake.log]
    assert tasks == ["retrieval.query", "retrieval.passage"]
    assert np.allclose(
        query,
        vector_for("jina-embeddings-v3", "retrieval.query", "what is late chunking?"),
        atol=1e-6,
    )
    assert document.shape == (1024,)
    model.embed(["x"], "clustering")
    assert fake.log[-1]["body"]["task"] == "separation"


def test_v4_item_limit_and_order(server: LoopbackServer, fake: FakeJina) -> None:
    texts = [f"item {i}" for i in range(1200)]
    vectors = jina(server, "jina-embeddings-v4", max_concurrency=1).embed(texts)
    assert max(len(e["body"]["input"]) for e in fake.log) <= 512
    expected = np.stack(
        [vector_for("jina-embeddings-v4", "retrieval.passage", t) for t in texts[:3]]
    )
    assert np.allclose(vectors[:3], expected, atol=1e-6)


def test_options_reach_the_wire(server: LoopbackServer, fake: FakeJina) -> None:
    vectors = jina(
        server, dimensions=256, normalize=False, embedding_type="base64", late_chunking=True
    ).embed(["x"])
    body = fake.log[-1]["body"]
    assert (
        body["dimensions"],
        body["normalized"],
        body["embedding_type"],
        body["late_chunking"],
    ) == (256, False, "base64", True)
    assert np.allclose(
        vectors[0],
        vector_for("jina-embeddings-v3", "retrieval.passage", "x", 256, normalized=False),
        atol=1e-6,
    )


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_bits_come_from_jina(server: LoopbackServer, fake: FakeJina, precision: str) -> None:
    bits = jina(server, precision=precision).embed(["x", "y"])
    assert fake.log[-1]["body"]["embedding_type"] == precision
    floats = jina(server).embed(["x", "y"])
    assert np.array_equal(bits, quantize(floats, precision))  # type: ignore[arg-type]
    assert bits.shape == (2, 128)


def test_int8_is_quantized_here(server: LoopbackServer, fake: FakeJina) -> None:
    codes = jina(server, precision="int8").embed(["x"])
    assert fake.log[-1]["body"]["embedding_type"] == "float" and codes.dtype == np.int8


def test_model_without_tasks_sends_none(server: LoopbackServer, fake: FakeJina) -> None:
    jina(server, "jina-embeddings-v2-base-en").embed_query("q")
    assert "task" not in fake.log[-1]["body"]


def test_start_is_cut_here_before_sending(server: LoopbackServer, fake: FakeJina) -> None:
    # Jina cuts only at the end, so with truncate="start" the engine cuts before the request.
    long = " ".join(f"w{i}" for i in range(9000))  # over 8192 tokens by either count
    result = jina(server, truncate="start").embed_with_report([long])
    sent = fake.log[-1]["body"]
    assert [entry["status"] for entry in fake.log] == [200] and sent["truncate"] is False
    assert long.endswith(sent["input"][0]) and len(sent["input"][0]) < len(long)
    assert result.report.items[0].truncated


def test_rate_limits_are_retried(fake: FakeJina) -> None:
    fake.rate_limit_every = 2
    with LoopbackServer(fake) as server:
        result = jina(server, batch_size=10, max_concurrency=2).embed_with_report(
            [f"t{i}" for i in range(100)]
        )
    assert result.report.rate_limited > 0 and result.report.failed == 0


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(server: LoopbackServer, fake: FakeJina, suffix: str) -> None:
    model = embedify.get_model("jina", base_url=server.url + suffix, api_key=API_KEY)
    assert model.embed(["x"]).shape == (1, 1024) and fake.log[-1]["path"] == "/v1/embeddings"
    assert model.endpoint == server.url


def test_a_wrong_path_names_the_url_not_the_model(server: LoopbackServer) -> None:
    wrong = embedify.get_model("jina", base_url=f"{server.url}/api", api_key=API_KEY)
    with pytest.raises(embedify.ConfigurationError) as caught:
        wrong.embed(["x"])
    message = str(caught.value)
    assert f"{server.url}/api/v1/embeddings answered 404" in message and "model" not in message


def test_default_endpoint_and_missing_key() -> None:
    model = embedify.get_model("jina")
    assert model.endpoint == "https://api.jina.ai"
    with pytest.raises(embedify.ConfigurationError, match=r"api_key=\.\.\. or set JINA_API_KEY"):
        model.embed(["x"])
