"""The Acme provider against its loopback fake: the conformance kit, then what Acme's own
mapping puts on the wire and makes of Acme's answers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from embedify_acme.testing import API_KEY, FakeAcme, tokens_of, vector_for

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer

Calls = list[tuple[Callable[[], object], type[Exception]]]


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_API_KEY", raising=False)


@pytest.fixture
def fake() -> FakeAcme:
    return FakeAcme()


@pytest.fixture
def server(fake: FakeAcme) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def acme(server: LoopbackServer, name: str = "acme-embed-1", **options: Any) -> Any:
    return embedify.get_model(f"acme:{name}", base_url=server.url, api_key=API_KEY, **options)


class TestAcmeConformance(ConformanceSuite):
    """acme-embed-1, which sends ``dimensions`` to Acme."""

    @pytest.fixture
    def make_model(self, server: LoopbackServer) -> Callable[..., Any]:
        return lambda **options: acme(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer) -> Calls:
        wrong_key = embedify.get_model("acme", base_url=server.url, api_key="wrong")
        no_model = acme(server, "acme-embed-9")
        strict = acme(server, truncate="error")
        return [
            (lambda: wrong_key.embed(["text"]), embedify.AuthenticationError),
            (lambda: no_model.embed(["text"]), embedify.ModelNotFoundError),
            (lambda: strict.embed(["word " * 600]), embedify.InputTooLongError),
        ]


class TestAcmeMiniConformance(TestAcmeConformance):
    """acme-embed-mini, whose dimension is fixed: ``dimensions=`` is refused when it is built."""

    @pytest.fixture
    def make_model(self, server: LoopbackServer) -> Callable[..., Any]:
        return lambda **options: acme(server, "acme-embed-mini", **options)


def test_the_entry_point_registers_acme_without_importing_httpx() -> None:
    code = (
        "import sys; from embedify.registry import registry; registry.load(); "
        "print(registry.providers['acme'].plugin, 'httpx' in sys.modules)"
    )
    env = {**os.environ, "EMBEDIFY_PLUGINS": "acme"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["acme", "False"]


def test_roles_are_sent_as_input_type(server: LoopbackServer, fake: FakeAcme) -> None:
    model = acme(server)
    query = model.embed_query("where is the cat?")
    document = model.embed_documents(["Stocks fell."])[0]
    assert [entry["body"]["input_type"] for entry in fake.log] == ["query", "document"]
    assert np.allclose(query, vector_for("query", "where is the cat?", 256), atol=1e-6)
    assert np.allclose(document, vector_for("document", "Stocks fell.", 256), atol=1e-6)
    assert model.info.roles == {"document": "input_type=document", "query": "input_type=query"}


def test_dimensions_are_sent_as_dimensions(server: LoopbackServer, fake: FakeAcme) -> None:
    vectors = acme(server, dimensions=128).embed(["short"])
    assert fake.log[-1]["body"]["dimensions"] == 128
    assert np.allclose(vectors[0], vector_for("document", "short", 128), atol=1e-6)
    acme(server).embed(["native"])
    assert "dimensions" not in fake.log[-1]["body"]


@pytest.mark.parametrize(
    ("name", "dimensions", "words"),
    [("acme-embed-1", 100, "allowed: 64, 128, 256"), ("acme-embed-mini", 32, "fixed")],
)
def test_dimensions_acme_does_not_offer_are_refused_before_any_request(
    server: LoopbackServer, fake: FakeAcme, name: str, dimensions: int, words: str
) -> None:
    with pytest.raises(embedify.ConfigurationError, match=words):
        acme(server, name, dimensions=dimensions)
    assert fake.log == []


def test_info_tells_acmes_facts_before_any_request() -> None:
    info = embedify.get_model("acme").info
    assert info.model_id == "acme-embed-1" and info.dimension == 256
    assert info.allowed_dimensions == (64, 128, 256) and info.dimensions_mode == "native"
    assert info.normalized and info.endpoint == "https://api.acme.example"
    mini = embedify.get_model("acme-embed-mini").info  # a bare model name registered by acme
    assert (mini.provider, mini.dimension, mini.dimensions_mode) == ("acme", 64, "fixed")


def test_a_model_acme_adds_later_learns_its_dimension(server: LoopbackServer) -> None:
    model = acme(server, "acme-embed-9", dimensions=64)  # Acme, not the table, judges it
    assert model.info.dimension is None and model.info.dimensions_mode == "native"


def test_requests_keep_to_acmes_input_count(server: LoopbackServer, fake: FakeAcme) -> None:
    vectors = acme(server, max_concurrency=1).embed([f"text {i}" for i in range(500)])
    sent = [entry["body"]["inputs"] for entry in fake.log]
    assert max(map(len, sent)) == 64 and sum(map(len, sent)) == 500
    assert np.allclose(vectors[499], vector_for("document", "text 499", 256), atol=1e-6)


def test_requests_keep_to_acmes_token_total(server: LoopbackServer, fake: FakeAcme) -> None:
    texts = [f"text {i} " + "word " * (30 + i % 300) for i in range(200)]
    vectors = acme(server, "acme-embed-mini", max_concurrency=1).embed(texts)
    assert fake.statuses == [200] * len(fake.log)  # nothing the server had to refuse
    assert max(sum(map(tokens_of, entry["body"]["inputs"])) for entry in fake.log) <= 8192
    assert np.allclose(vectors[150], vector_for("document", texts[150], 64), atol=1e-6)


def test_input_too_long_names_the_input_acme_counted(fake: FakeAcme) -> None:
    fake.max_tokens_per_input = 5  # Acme counts more tokens than the model declares
    texts = ["fine", "one two three four five six", "also fine"]
    with LoopbackServer(fake) as server, pytest.raises(embedify.EmbeddingJobError) as caught:
        acme(server, truncate="error", max_concurrency=1).embed(texts)
    failure = caught.value.failures[1]
    assert isinstance(failure, embedify.InputTooLongError) and failure.index == 1
    assert set(caught.value.failures) == {1}
    assert caught.value.report.splits == 0  # Acme's index named it: no search by splitting


def test_an_input_acme_finds_too_long_is_cut_and_sent_again(fake: FakeAcme) -> None:
    fake.max_tokens_per_input = 5
    with LoopbackServer(fake) as server:
        result = acme(server, truncate="end").embed_with_report(["one two three four five six"])
    assert result.report.truncated == [0] and result.report.failed == 0
    assert fake.statuses[0] == 400 and fake.statuses[-1] == 200


def test_the_tokens_acme_charged_reach_the_engine(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    charged: list[int] = []
    monkeypatch.setattr(embedify, "observe_usage", charged.append)
    acme(server, batch_size=2).embed(["one two", "three", "four five six"])
    assert sum(charged) == 6  # Acme's count: words, over the requests however they were made


def test_the_key_comes_from_acme_api_key(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(embedify.ConfigurationError, match="ACME_API_KEY"):
        embedify.get_model("acme", base_url=server.url).embed(["text"])
    monkeypatch.setenv("ACME_API_KEY", API_KEY)
    assert embedify.get_model("acme", base_url=f"{server.url}/v1").embed(["text"]).shape == (1, 256)
