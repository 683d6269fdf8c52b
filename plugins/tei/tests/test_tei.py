"""TEI through httpx against a loopback TEI server (and through the OpenAI plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_tei.testing import FakeTEI, vector_for

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer, Response


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TEI_URL", raising=False)


@pytest.fixture
def fake() -> FakeTEI:
    return FakeTEI()


@pytest.fixture
def server(fake: FakeTEI) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


class TestTEIConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: embedify.get_model(
            f"tei:{server.url}", prompt_names={"query": "query"}, **options
        )

    @pytest.fixture
    def error_cases(self):  # type: ignore[no-untyped-def]
        secured = LoopbackServer(FakeTEI(api_key="tei-secret")).__enter__()
        strict = LoopbackServer(FakeTEI(max_input_length=8)).__enter__()
        no_token = embedify.get_model(f"tei:{secured.url}")
        strict_model = embedify.get_model(f"tei:{strict.url}", truncate="error")
        yield [
            (lambda: no_token.embed(["x"]), embedify.AuthenticationError),
            (lambda: strict_model.embed(["a b c d e f g h i j"]), embedify.InputTooLongError),
        ]
        secured.__exit__()
        strict.__exit__()


def test_limits_come_from_info_and_keep_requests_valid() -> None:
    fake = FakeTEI(max_client_batch_size=8)
    texts = [f"passage {i}" for i in range(500)]
    with LoopbackServer(fake) as server:
        model = embedify.get_model(f"tei:{server.url}")
        assert model.info.limits.max_inputs_per_request is None  # unknown before the first call
        result = model.embed_with_report(texts)
        assert model.info.limits.max_inputs_per_request == 8
        assert model.revision == "BAAI/bge-small-en-v1.5@5c38ec7"
    assert result.report.failed == 0
    embeds = [e for e in fake.log if e["path"] == "/embed"]
    assert {e["status"] for e in embeds} == {200} and max(
        len(e["body"]["inputs"]) for e in embeds
    ) <= 8
    assert np.allclose(result.vectors, np.stack([vector_for(t) for t in texts]), atol=1e-6)


def test_concurrency_fits_the_server_s_permits() -> None:
    # Each input of a request takes one of TEI's permits: 16 permits, 8 inputs a request -> 2.
    fake = FakeTEI(max_client_batch_size=8, max_concurrent_requests=16)
    with LoopbackServer(fake) as server:
        model = embedify.get_model(f"tei:{server.url}")
        chosen = embedify.get_model(f"tei:{server.url}", max_concurrency=5)
        assert model.info.max_concurrency == 8  # before /info is read
        model.embed(["x"])
        chosen.embed(["x"])
    assert model.info.max_concurrency == 2
    assert chosen.info.max_concurrency == 5  # an explicit option wins


@pytest.mark.parametrize("version", ["1.8.3", "1.9.3"])
def test_a_stricter_server_is_split_on_413_or_422(version: str) -> None:
    fake = FakeTEI(max_client_batch_size=32, version=version)
    with LoopbackServer(fake) as server:
        model = embedify.get_model(f"tei:{server.url}", max_concurrency=1)
        model.embed(["warm up"])  # reads /info: 32 per request
        fake.max_client_batch_size = 8  # the server is reconfigured behind our back
        result = model.embed_with_report([f"text {i}" for i in range(100)])
    assert result.report.failed == 0 and result.report.splits > 0
    statuses = {e["status"] for e in fake.log if e["path"] == "/embed"}
    assert statuses == {200, 413 if version == "1.8.3" else 422}


def concurrency_of(model: Any) -> tuple[list[int], list[int]]:
    """The engine's allowed requests in flight as each request starts, and how many had started
    when each 429 came back; wraps the instance's method, as the conformance kit does to watch
    batches. (The allowance, not the count in flight: the count also depends on timing.)"""
    from embedify.engine.job import model_state

    allowed, overloads = [], []
    original = model.aembed_batch

    async def watched(texts: list[str], role: Any) -> Any:
        allowed.append(model_state(model).pacer.allowed_in_flight())
        try:
            return await original(texts, role)
        except embedify.RateLimitError:
            overloads.append(len(allowed))
            raise

    model.aembed_batch = watched
    return allowed, overloads


def test_overloaded_server_lowers_concurrency_and_recovers() -> None:
    # 64 permits, 56 held by other clients until six overloads: 2 requests of 4 fit at first.
    fake = FakeTEI(
        max_concurrent_requests=64,
        max_client_batch_size=4,
        latency=0.03,
        other_clients_permits=56,
        other_clients_leave_after=6,
    )
    with LoopbackServer(fake) as server:
        model = embedify.get_model(f"tei:{server.url}")
        allowed, overloads = concurrency_of(model)
        result = model.embed_with_report([f"t{i}" for i in range(2000)])
    assert result.report.failed == 0 and result.report.rate_limited == len(overloads) == 6
    before = max(allowed[: overloads[0]])
    after = allowed[overloads[-1] :]
    # The burst of 429s halves the allowance (once per burst, not once per 429) ...
    assert min(after) <= (before + 1) // 2
    assert min(after) >= 1
    # ... and with the other clients gone, it grows again.
    low = after.index(min(after))
    assert max(after[low:]) > min(after)


def test_roles_map_to_prompt_names_and_options_reach_the_wire(
    server: LoopbackServer, fake: FakeTEI
) -> None:
    model = embedify.get_model(
        f"tei:{server.url}",
        prompt_names={"query": "query"},
        dimensions=128,
        normalize=False,
        truncate="start",
    )
    vector = model.embed_query("what is tei?")
    body = fake.log[-1]["body"]
    assert body["prompt_name"] == "query" and body["dimensions"] == 128
    assert body["normalize"] is False and body["truncation_direction"] == "Left"
    assert np.allclose(vector, vector_for("what is tei?", 128, False, "query: "), atol=1e-5)
    model.embed_documents(["a passage"])
    assert "prompt_name" not in fake.log[-1]["body"]


def test_bearer_token_and_empty_401(fake: FakeTEI) -> None:
    fake.api_key = "tei-secret"
    with LoopbackServer(fake) as server:
        assert embedify.get_model(f"tei:{server.url}", api_key="tei-secret").embed(["x"]).shape == (
            1,
            384,
        )
        with pytest.raises(embedify.AuthenticationError, match="bearer token"):
            embedify.get_model(f"tei:{server.url}").embed(["x"])


def test_default_url_from_environment(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEI_URL", server.url)
    assert embedify.get_model("tei").model_id == server.url


def test_openai_compatible_route_through_the_openai_plugin(
    server: LoopbackServer, fake: FakeTEI
) -> None:
    model = embedify.get_model(
        "openai:BAAI/bge-small-en-v1.5",
        base_url=f"{server.url}/v1",
        api_key="unused",
        max_inputs_per_request=32,
        max_tokens_per_input=512,
    )
    vectors = model.embed(["through the openai plugin", "second"])
    assert np.allclose(
        vectors,
        np.stack([vector_for("through the openai plugin"), vector_for("second")]),
        atol=1e-6,
    )
    assert fake.log[-1]["path"] == "/v1/embeddings" and model.info.dimension == 384


def test_a_server_that_is_not_tei_is_named() -> None:
    with (
        LoopbackServer(lambda request: Response(404, b"")) as elsewhere,
        pytest.raises(embedify.ConfigurationError) as caught,
    ):
        embedify.get_model(f"tei:{elsewhere.url}").embed(["x"])
    message = str(caught.value)
    assert f"{elsewhere.url}/info answered 404" in message and "None" not in message


def test_the_openai_route_prefix_is_accepted(server: LoopbackServer, fake: FakeTEI) -> None:
    model = embedify.get_model(f"tei:{server.url}/v1")
    assert model.embed(["x"]).shape == (1, 384) and fake.log[-1]["path"] == "/embed"
    assert model.endpoint == server.url


def test_nothing_listening_is_one_clear_error() -> None:
    with LoopbackServer(FakeTEI()) as stopped:
        url = stopped.url
    with pytest.raises(embedify.ConnectionFailedError, match="refused") as caught:
        embedify.get_model(f"tei:{url}").embed(["x"])
    assert url in str(caught.value) and not caught.value.name_resolution
