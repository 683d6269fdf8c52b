"""embedify.http: the plumbing of remote providers, through httpx against a loopback server."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

import embedify
from embedify import errors
from embedify.engine.sync import run_sync
from embedify.http import ErrorResponse, HTTPEmbeddingModel
from embedify.testing import LoopbackServer, Request, Response

KEY = "demo-secret-key-123"


class Demo(HTTPEmbeddingModel):
    """A provider written on the base: where it is, and its wire mapping."""

    provider = "demo"
    default_model_id = "demo-1"
    default_base_url = "http://127.0.0.1:9"
    base_url_variables = ("DEMO_BASE_URL",)
    version_paths = ("/v1",)
    api_key_variables = ("DEMO_API_KEY", "DEMO_KEY")

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        answer = await self.request_json("POST", "/v1/embed", {"inputs": texts})
        return np.asarray(answer["embeddings"], dtype=np.float32)

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        if response.status == 404 and response.code == "model_not_found":
            return errors.ModelNotFoundError(response.text, status=404)
        return None


def serve(request: Request) -> Response:
    """The demo API: ``POST /v1/embed``; ``inputs[0]`` picks a canned answer."""
    if request.path != "/v1/embed":
        return Response(404, "404 page not found")
    (first,) = request.json()["inputs"][:1]
    canned = {
        "401": Response(401, {"error": {"message": f"bad key {request.headers.get('x-key')}"}}),
        "402": Response(402, {"message": "balance exhausted"}),
        "404": Response(404, {"error": {"message": "no model demo-1", "code": "model_not_found"}}),
        "413": Response(413, {"detail": "batch too large"}),
        "418": Response(418, b""),
        "429ms": Response(429, {"message": "slow down"}, headers={"retry-after-ms": "1500"}),
        "429": Response(
            429,
            {"message": "slow down"},
            headers={
                "retry-after": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "3s",
            },
        ),
        "503": Response(503, "upstream unavailable"),
        "504": Response(504, "gateway timeout"),
        "drop": Response(drop=True),
        "slow": Response(200, {"embeddings": [[1.0]]}, delay=1.0),
    }
    return canned.get(
        first,
        Response(200, {"embeddings": [[1.0, 0.0]]}, headers={"x-ratelimit-limit-requests": "9"}),
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEMO_API_KEY", "DEMO_KEY", "DEMO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(serve) as running:
        yield running


def demo(url: str, **options: Any) -> Demo:
    return Demo(base_url=url, api_key=KEY, **options)


def send(model: Demo, first: str) -> Any:
    """One request, without the engine (no retries): what the provider raises or returns."""
    return asyncio.run(model.aembed_batch([first], "document"))


# -- clients ---------------------------------------------------------------------------------


def test_one_client_per_event_loop_and_aclose(server: LoopbackServer) -> None:
    model = demo(server.url)

    async def two_calls() -> tuple[Any, Any, Any]:
        first = model.client()
        same = model.client()
        await model.aclose()
        assert first.is_closed
        return first, same, model.client()

    first, same, reopened = asyncio.run(two_calls())
    assert first is same and reopened is not first
    other_loop = asyncio.run(two_calls())[0]
    assert other_loop is not first and other_loop is not reopened
    assert len(model._clients) <= 1  # clients of finished loops are dropped, not kept


def test_a_client_closes_with_its_event_loop(server: LoopbackServer) -> None:
    model = demo(server.url)

    async def job() -> Any:
        await model.aembed(["hello"])
        return model.client()

    client = asyncio.run(job())  # asyncio.run shuts the loop's async generators down
    assert client.is_closed


class Pool:
    """A client like aiohttp's: it complains when it is collected before it was closed."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def aclose(self) -> None:
        self.events.append("closed")

    def __del__(self) -> None:
        self.events.append("collected")


def test_a_dropped_model_closes_its_client_before_it_is_collected(server: LoopbackServer) -> None:
    events: list[str] = []

    class PoolDemo(Demo):
        def make_client(self) -> Any:
            return Pool(events)

    model = PoolDemo(base_url=server.url, api_key=KEY)

    async def open_client(owner: Demo) -> None:
        owner.client()  # on the sync bridge's loop, which lives on

    run_sync(open_client(model))
    model.itself = model  # type: ignore[attr-defined]  # dropped in a cycle, like a traceback
    del model
    gc.collect()
    for _ in range(100):  # the close runs on the loop: let it take its turns
        if "collected" in events:
            break
        run_sync(asyncio.sleep(0))
    assert events == ["closed", "collected"]


def test_a_model_serves_several_event_loops(server: LoopbackServer) -> None:
    model = demo(server.url)
    for _ in range(3):  # each asyncio.run is a new loop; a shared client would fail here
        assert send(model, "hello").shape == (1, 2)


# -- keys and URLs ---------------------------------------------------------------------------


def test_api_key_from_option_then_environment_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_KEY", "second")
    assert Demo().api_key() == "second"
    monkeypatch.setenv("DEMO_API_KEY", "first")
    assert Demo().api_key() == "first"
    assert Demo(api_key="option").api_key() == "option"


def test_missing_key_is_one_line_naming_the_option_and_variables() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        Demo().embed(["x"])
    message = str(caught.value)
    assert message == "No API key for demo: pass api_key=... or set DEMO_API_KEY or DEMO_KEY."


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_the_version_path(server: LoopbackServer, suffix: str) -> None:
    model = demo(server.url + suffix)
    assert model.base_url == server.url and model.endpoint == server.url
    assert send(model, "hello").shape == (1, 2)


def test_base_url_from_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Demo().base_url == "http://127.0.0.1:9"
    monkeypatch.setenv("DEMO_BASE_URL", "http://elsewhere:1/v1")
    assert Demo().base_url == "http://elsewhere:1"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ("401", errors.AuthenticationError),
        ("402", errors.QuotaExceededError),
        ("404", errors.ModelNotFoundError),
        ("413", errors.BatchTooLargeError),
        ("418", errors.InvalidRequestError),
        ("429", errors.RateLimitError),
        ("503", errors.TransientError),
        ("504", errors.RequestTimeoutError),
    ],
)
def test_status_table_refined_by_the_body(
    server: LoopbackServer, first: str, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught:
        send(demo(server.url), first)
    assert type(caught.value) is expected and str(caught.value).startswith(f"demo {first[:3]}")


@pytest.mark.parametrize(("first", "seconds"), [("429", 3.0), ("429ms", 1.5)])
def test_rate_limits_carry_retry_after(server: LoopbackServer, first: str, seconds: float) -> None:
    with pytest.raises(errors.RateLimitError) as caught:
        send(demo(server.url), first)
    assert caught.value.retry_after == seconds


def test_a_missing_route_names_the_url(server: LoopbackServer) -> None:
    model = demo(f"{server.url}/api")  # a wrong path: the server has no /api/v1/embed
    with pytest.raises(errors.ConfigurationError) as caught:
        send(model, "hello")
    message = str(caught.value)
    assert f"{server.url}/api/v1/embed answered 404" in message
    assert "route is missing" in message and "model" not in message and "\n" not in message


def test_rate_limit_headers_of_every_response_reach_the_engine(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Mapping[str, str]] = []
    monkeypatch.setattr("embedify.http.observe_rate_limit_headers", seen.append)
    model = demo(server.url)
    send(model, "hello")
    with pytest.raises(errors.RateLimitError):
        send(model, "429")
    assert [headers.get("x-ratelimit-limit-requests") for headers in seen] == ["9", None]
    assert seen[1]["x-ratelimit-remaining-requests"] == "0"


def test_secrets_never_reach_messages_or_reprs(server: LoopbackServer) -> None:
    header_secret = "header-secret-456"
    model = demo(server.url, default_headers={"x-key": header_secret})
    with pytest.raises(errors.AuthenticationError) as caught:
        send(model, "401")  # the server echoes the header's value in its message
    shown = str(caught.value) + repr(model) + repr(model.options) + str(model.info)
    assert header_secret not in shown and KEY not in shown and "bad key ***" in shown
    assert "check api_key / DEMO_API_KEY or DEMO_KEY" in str(caught.value)


def test_default_headers_are_sent(server: LoopbackServer) -> None:
    model = demo(server.url, default_headers={"x-key": "sent"})
    send(model, "hello")
    sent = server.requests[-1].headers
    assert sent["x-key"] == "sent" and sent["authorization"] == f"Bearer {KEY}"


# -- transport -------------------------------------------------------------------------------


def test_an_unknown_host_is_named_and_marked_as_name_resolution() -> None:
    model = demo("http://no-such-host.invalid")
    with pytest.raises(errors.ConnectionFailedError) as caught:
        send(model, "hello")
    assert caught.value.name_resolution and caught.value.host == "no-such-host.invalid"
    assert "no-such-host.invalid" in str(caught.value)


def test_nothing_listening_is_a_connection_failure_naming_the_url() -> None:
    with LoopbackServer(serve) as stopped:
        url = stopped.url
    with pytest.raises(errors.ConnectionFailedError) as caught:
        send(demo(url), "hello")
    assert not caught.value.name_resolution and caught.value.host == "127.0.0.1"
    assert url in str(caught.value)


@pytest.mark.parametrize(
    ("first", "expected"), [("slow", errors.RequestTimeoutError), ("drop", errors.TransientError)]
)
def test_timeouts_and_dropped_connections_are_transient(
    server: LoopbackServer, first: str, expected: type[Exception]
) -> None:
    with pytest.raises(errors.TransientError) as caught:
        send(demo(server.url, timeout=0.2), first)
    assert type(caught.value) is expected


def test_a_subclass_must_implement_aembed_batch() -> None:
    with pytest.raises(TypeError, match="aembed_batch"):

        class Empty(HTTPEmbeddingModel):
            provider = "empty"
