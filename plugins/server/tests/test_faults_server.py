"""`embedify serve` against hostile input: auth that cannot be switched off by accident, bodies
refused as soon as they cross the limit, a loop that keeps answering while one request is
tokenized, limits checked at start, and a drain that never waits on a hostile upstream."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from embedify_server import cli as server_cli
from embedify_server.app import ServerSettings
from embedify_server.batcher import Batcher, ShuttingDown
from embedify_server.metrics import Metrics
from embedify_server.scheduling import (
    MAX_CLIENT_RETRY_AFTER,
    client_retry_after,
    retry_after_seconds,
)
from embedify_server.testing import running_server
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.testclient import TestClient

import embedify
from embedify.cli import cli
from embedify.testing.loopback import LoopbackServer, Request, Response, embedding_items

pytestmark = pytest.mark.faults

Serve = Callable[..., TestClient]
KEY = "s3cret-key-0123"


# -- auth at start ---------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The calls `embedify serve` would have served, instead of serving them."""
    calls: list[dict[str, Any]] = []

    def record(listener: socket.socket, app: Any, **kwargs: Any) -> None:
        listener.close()
        calls.append({"settings": app.state.embedding_server.settings, **kwargs})

    monkeypatch.setattr(server_cli, "serve_on", record)
    monkeypatch.delenv("EMBEDIFY_SERVER_API_KEY", raising=False)
    return calls


def invoke(args: Sequence[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["serve", "fake:16", "--port", "0", *args], env=env)


@pytest.mark.parametrize("key", ["", "   ", "\t"])
def test_an_empty_or_blank_key_is_refused_at_start(served: list[Any], key: str) -> None:
    result = invoke(["--api-key", key])
    assert result.exit_code == 2, result.output
    assert "--no-auth" in result.output and "empty" in result.output
    assert served == []
    with pytest.raises(ValidationError, match="empty"):
        ServerSettings(api_key=key)


def test_a_blank_key_from_the_environment_is_refused(served: list[Any]) -> None:
    result = invoke([], env={"EMBEDIFY_SERVER_API_KEY": "  "})
    assert result.exit_code == 2, result.output
    assert "--no-auth" in result.output
    assert served == []


@pytest.mark.parametrize("env", [{}, {"EMBEDIFY_SERVER_API_KEY": ""}])
def test_no_key_and_no_no_auth_is_refused(served: list[Any], env: dict[str, str]) -> None:
    result = invoke([], env=env)
    assert result.exit_code == 2, result.output
    assert "--api-key" in result.output and "--no-auth" in result.output
    assert served == []


def test_a_key_and_no_auth_together_are_refused(served: list[Any]) -> None:
    result = invoke(["--api-key", KEY, "--no-auth"])
    assert result.exit_code == 2, result.output
    assert served == []


@pytest.mark.parametrize("key", ["clé-secrète", "key with spaces", "key\x00nul"])
def test_a_key_no_http_client_can_send_is_refused_clearly(served: list[Any], key: str) -> None:
    result = invoke(["--api-key", key])
    assert result.exit_code == 2, result.output
    assert "printable ASCII" in result.output
    assert key not in result.output  # the secret is not echoed back
    assert served == []


def test_no_auth_and_a_key_each_start_the_server(served: list[Any]) -> None:
    assert invoke(["--no-auth"]).exit_code == 0
    assert invoke(["--api-key", KEY]).exit_code == 0
    assert invoke([], env={"EMBEDIFY_SERVER_API_KEY": KEY}).exit_code == 0
    keys = [call["settings"].api_key for call in served]
    assert keys[0] is None
    assert [key.get_secret_value() for key in keys[1:]] == [KEY, KEY]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def cli_server(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`embedify serve ARGS` in its own process (stdout and stderr together), once healthy."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "embedify", "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a readiness wait, not a timing assertion
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_without_auth_the_first_log_line_and_info_say_so() -> None:
    with cli_server("fake:16", "--no-auth") as (process, url):
        info = httpx.get(f"{url}/info").json()
        process.send_signal(signal.SIGTERM)
        log = process.stdout.read() if process.stdout else ""
    assert info["auth"] is False
    assert "authentication is OFF" in log.splitlines()[0]


def test_with_a_key_info_says_auth_is_on(serve: Serve) -> None:
    client = serve(api_key=KEY)
    info = client.get("/info", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert info["auth"] is True
    assert serve().get("/info").json()["auth"] is False


# -- auth per request ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {KEY}", f"Bearer   {KEY}", f"Bearer {KEY}  "],
)
def test_the_bearer_scheme_is_case_insensitive_and_spaces_are_tolerated(
    serve: Serve, authorization: str
) -> None:
    response = serve(api_key=KEY).post(
        "/v1/embeddings", json={"input": "x"}, headers={"Authorization": authorization}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        KEY,
        f"Basic {KEY}",
        f"Bearer {KEY}x",
        f"Bearer {KEY[:-1]}",
        "Bearer " + "x" * len(KEY),  # wrong key of the right length
        f"Bearer {KEY} {KEY}",
        b"Bearer \xc3\xa9\xff\xfe",  # non-ASCII bytes
        "Bearer " + KEY.upper(),
    ],
)
def test_every_wrong_authorization_gets_a_401_never_a_500(
    serve: Serve, authorization: str | bytes | None
) -> None:
    client = serve(api_key=KEY)
    headers = {} if authorization is None else {"Authorization": authorization}
    openai = client.post("/v1/embeddings", json={"input": "x"}, headers=headers)
    assert openai.status_code == 401
    assert openai.json()["error"]["code"] == "invalid_api_key"
    assert client.post("/embed", json={"inputs": "x"}, headers=headers).status_code == 401


def test_raw_non_ascii_header_bytes_on_the_wire_get_a_401() -> None:
    with running_server("fake:16", ServerSettings(api_key=KEY)) as url:
        answer = raw_exchange(
            url,
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer \xe9\xff\x80" + KEY.encode() + b"\r\n"
            b"Content-Length: 13\r\nConnection: close\r\n\r\n"
            b'{"input":"x"}',
        )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"invalid_api_key" in answer


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` as it is and read the whole answer (30 s guard per read)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        return read_answer(connection)


def read_answer(connection: socket.socket) -> bytes:
    """One HTTP response with a Content-Length, head and body, however the packets fall."""
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer) < answer_length(answer):
        chunk = connection.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def answer_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(head) + 4


# -- bodies ----------------------------------------------------------------------------------


def test_a_chunked_body_is_refused_as_soon_as_it_crosses_the_limit() -> None:
    limit = 64 * 1024
    chunk = b"x" * 16 * 1024
    with running_server("fake:16", ServerSettings(payload_limit=limit)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(
                b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            sent = 0
            while sent <= limit:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            # The body is not finished (no last chunk): the answer comes all the same, so the
            # server read at most ``sent`` bytes of a body the client could go on sending.
            answer = read_answer(connection)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload limit 65536" in answer


def test_a_declared_length_over_the_limit_is_refused_before_the_body() -> None:
    with running_server("fake:16", ServerSettings(payload_limit=1000)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000000\r\n\r\n"
            )
            answer = read_answer(connection)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# -- the event loop --------------------------------------------------------------------------

#: A text this long is "huge": counting its tokens waits until the test lets it go.
HUGE = 1_000_000
tokenizing = threading.Event()
tokenized = threading.Event()


class SlowTokenizer(embedify.EmbeddingModel):
    """Counting the tokens of a huge text takes until the test sets ``tokenized``."""

    provider = "slow-tokenizer"
    default_model_id = "slow"
    capabilities = embedify.Capabilities(
        dimension=4, limits=embedify.Limits(max_tokens_per_input=512)
    )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if any(len(text) > HUGE for text in texts) and not tokenized.is_set():
            tokenizing.set()
            tokenized.wait(60)
        return super().count_tokens(texts)

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        return np.ones((len(texts), 4), np.float32)


def test_other_clients_are_answered_while_a_huge_request_is_tokenized() -> None:
    tokenizing.clear()
    tokenized.clear()
    huge = "word " * (HUGE // 5 + 1000)
    settings = ServerSettings(payload_limit=2 * HUGE)
    with running_server(SlowTokenizer(), settings) as url, ThreadPoolExecutor(1) as pool:
        big = pool.submit(httpx.post, f"{url}/embed", json={"inputs": [huge]}, timeout=120)
        try:
            assert tokenizing.wait(60), "the huge request never reached the tokenizer"
            health = httpx.get(f"{url}/health", timeout=20)
            small = httpx.post(f"{url}/embed", json={"inputs": ["small"]}, timeout=20)
            assert not big.done()  # answered while the huge one is still being tokenized
        finally:
            tokenized.set()
        assert big.result().status_code == 200
    assert health.status_code == 200
    assert small.status_code == 200


# -- limits ----------------------------------------------------------------------------------


def test_max_concurrent_requests_below_the_client_batch_size_is_refused_at_start(
    served: list[Any],
) -> None:
    with pytest.raises(ValidationError, match="max_concurrent_requests=16 is lower than"):
        ServerSettings(max_concurrent_requests=16, max_client_batch_size=32)
    result = invoke(["--no-auth", "--max-concurrent-requests", "16"])
    assert result.exit_code == 2, result.output
    assert "--max-concurrent-requests" in result.output
    assert "--max-client-batch-size" in result.output
    assert served == []


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-batch-tokens", "0"),
        ("--max-client-batch-size", "-1"),
        ("--payload-limit", "0"),
        ("--drain-timeout", "0"),
    ],
)
def test_a_bad_limit_is_one_line_naming_its_flag(served: list[Any], flag: str, value: str) -> None:
    result = invoke(["--no-auth", flag, value])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1 and flag in error_lines[0], result.output
    assert served == []


def test_the_limit_options_reach_the_settings(served: list[Any]) -> None:
    result = invoke(["--no-auth", "--payload-limit", "5000", "--drain-timeout", "3.5"])
    assert result.exit_code == 0, result.output
    settings = served[0]["settings"]
    assert (settings.payload_limit, settings.drain_timeout) == (5000, 3.5)


def test_info_reports_the_limits_that_are_enforced(serve: Serve) -> None:
    client = serve(max_client_batch_size=4, max_batch_tokens=300, payload_limit=4000)
    info = client.get("/info").json()
    assert info["payload_limit"] == 4000
    assert info["max_input_length"] == 300  # the fake takes 512; no input may pass the budget
    assert info["max_batch_tokens"] == 300
    batch = info["max_client_batch_size"]
    assert client.post("/embed", json={"inputs": ["x"] * batch}).status_code == 200
    too_many = client.post("/embed", json={"inputs": ["x"] * (batch + 1)})
    assert too_many.status_code == 422
    assert f"maximum allowed batch size {batch}" in too_many.json()["error"]
    fits = "y" * (info["payload_limit"] - len('{"inputs":[""]}'))
    assert client.post("/embed", content=f'{{"inputs":["{fits}"]}}').status_code == 200
    over = client.post("/embed", content=f'{{"inputs":["{fits}y"]}}')
    assert over.status_code == 413
    long_text = "word " * 600
    cut = client.post("/embed", json={"inputs": [long_text], "truncate": False})
    assert cut.status_code == 422
    assert f"less than {info['max_input_length']} tokens" in cut.json()["error"]


def test_a_request_as_large_as_the_queue_is_admitted(serve: Serve) -> None:
    client = serve(max_client_batch_size=8, max_concurrent_requests=8)
    assert client.post("/embed", json={"inputs": ["x"] * 8}).status_code == 200


# -- retry-after and drain -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [(None, 1), (0.0, 1), (-5.0, 1), (2.1, 3), (1e300, 60), (math.inf, 60), (math.nan, 1)],
)
def test_client_retry_after_is_whole_seconds_within_a_minute(
    upstream: float | None, expected: int
) -> None:
    assert client_retry_after(upstream) == expected


@given(st.one_of(st.none(), st.floats()))
def test_client_retry_after_is_always_sane(upstream: float | None) -> None:
    seconds = client_retry_after(upstream)
    assert isinstance(seconds, int) and 1 <= seconds <= MAX_CLIENT_RETRY_AFTER


@given(st.integers(0, 10**12), st.one_of(st.none(), st.floats(allow_nan=False)))
def test_the_queue_s_retry_after_is_always_sane(queued: int, rate: float | None) -> None:
    assert 1 <= retry_after_seconds(queued, rate) <= MAX_CLIENT_RETRY_AFTER


class Stuck(embedify.EmbeddingModel):
    """A model whose batches never finish (an upstream pausing for 1e300 seconds)."""

    provider = "stuck"
    default_model_id = "stuck"
    capabilities = embedify.Capabilities(dimension=4)

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        stuck_batches.append(texts)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


stuck_batches: list[list[str]] = []


async def test_close_gives_up_on_a_stuck_batch_after_its_timeout() -> None:
    batcher = Batcher(
        Stuck(),
        max_batch_inputs=4,
        max_batch_tokens=1000,
        max_queued_inputs=10,
        batches_in_flight=1,
        metrics=Metrics(),
    )
    await batcher.start()
    running = asyncio.create_task(batcher.embed(["a"], [1], "document"))
    queued = asyncio.create_task(batcher.embed(["b"], [1], "query"))  # another role: next batch
    while not stuck_batches:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(batcher.close(timeout=0.1), 30)
    for request in (running, queued):
        with pytest.raises(ShuttingDown):
            await request
    with pytest.raises(ShuttingDown):
        await batcher.embed(["c"], [1], "document")


@pytest.fixture
def hostile_upstream() -> Iterator[LoopbackServer]:
    """An OpenAI-compatible upstream that answers, until the test makes it send 429s asking
    for a wait of 1e300 seconds."""

    def answer(request: Request) -> Response:
        body = request.json()
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = [np.ones(8, np.float32) for _ in texts]
        as_base64 = body.get("encoding_format") == "base64"
        data = embedding_items(vectors, as_base64=as_base64)
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return Response(200, {"object": "list", "data": data, "model": "m", "usage": usage})

    with LoopbackServer(answer) as upstream:
        yield upstream


HOSTILE_429 = Response(
    429,
    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
    headers={"Retry-After": "1e300"},
)


#: An upstream that does not answer (for five minutes).
SILENT = Response(200, {}, delay=300)


@contextlib.contextmanager
def proxy(
    upstream: LoopbackServer, first: Response, then: Response
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`embedify serve` in proxy mode in front of ``upstream``, draining for at most 2 s; after
    the warm-up the upstream answers ``first``, then ``then`` to every request."""
    options = [f"base_url={upstream.url}/v1", "api_key=upstream-key", "dimensions=8"]
    args = [arg for option in options for arg in ("-o", option)]
    model = "openai:text-embedding-3-small"
    with cli_server(model, *args, "--no-auth", "--drain-timeout", "2") as (process, url):
        upstream.fail_next(first)
        upstream.fail_next(then, times=10_000)
        yield process, url


def embed(url: str, text: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"input": [text]}, timeout=90)


def assert_prompt_refusal(response: httpx.Response) -> None:
    assert response.status_code in (429, 503), response.text
    assert 1 <= int(response.headers["retry-after"]) <= MAX_CLIENT_RETRY_AFTER
    assert "error" in response.json()


def test_a_hostile_upstream_429_reaches_the_client_as_a_prompt_sane_refusal(
    hostile_upstream: LoopbackServer,
) -> None:
    with proxy(hostile_upstream, HOSTILE_429, HOSTILE_429) as (_, url):
        assert_prompt_refusal(embed(url, "a"))


def test_shutdown_answers_503_within_the_drain_timeout_whatever_the_upstream_does(
    hostile_upstream: LoopbackServer,
) -> None:
    with (
        proxy(hostile_upstream, HOSTILE_429, SILENT) as (process, url),
        ThreadPoolExecutor(1) as pool,
    ):
        assert embed(url, "a").status_code == 429
        waiting = pool.submit(embed, url, "b")  # waits on the upstream (or on its pause)
        deadline = time.monotonic() + 60  # a readiness wait, not a timing assertion
        while "embedify_permits_used 1.0" not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline, "the request was never accepted"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # the drain gave up after 2 s
        answer = waiting.result()
    assert answer.status_code == 503, answer.text
    assert "shutting down" in answer.json()["error"]["message"]


def test_later_requests_are_not_poisoned_by_a_hostile_upstream_pause(
    hostile_upstream: LoopbackServer,
) -> None:
    """Needs the core's cap on server-set waits (engine/pacing.py): without it the model's pacer
    stays paused for 1e300 seconds after the first 429."""
    with proxy(hostile_upstream, HOSTILE_429, HOSTILE_429) as (_, url):
        for text in ("a", "b", "c"):
            assert_prompt_refusal(embed(url, text))


def test_a_login_in_the_models_url_never_reaches_a_client() -> None:
    """The served name goes into /info and every answer: a tei: URL's password must not."""
    from embedify_server.app import create_app
    from embedify_tei.testing import FakeTEI

    with LoopbackServer(FakeTEI()) as upstream:
        host = upstream.url.removeprefix("http://")
        model = embedify.get_model(f"tei:http://user:s3cret-pass@{host}")
        with TestClient(create_app(model, ServerSettings())) as client:
            info = client.get("/info").text
            answer = client.post("/v1/embeddings", json={"input": ["hi"], "model": "x"}).text
    assert "s3cret-pass" not in info + answer
    assert "***@" in info


HOSTILE_BODIES = {
    "/v1/embeddings": [
        b'{"input":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"input": {"a": 1}}',
        b'{"input": [1, 2, 3]}',
        b'{"input": ["a", null]}',
        b'{"input": "a", "dimensions": 1e300}',
        b'{"input": "a", "dimensions": true}',
        b'{"input": "a", "dimensions": "8"}',
        b'{"input": "a", "encoding_format": "xml"}',
        b'{"input": "\xff\xfe"}',
        b'{"input": "\\ud800"}',
        b'{"input": "a", "dimensions": NaN}',
        b"[1, 2]",
        b"",
        b'{"input": "a", "model": 5}',
    ],
    "/embed": [
        b'{"inputs": {"a": 1}}',
        b'{"inputs": null}',
        b'{"inputs": "a", "truncate": "yes"}',
        b'{"inputs": "a", "normalize": "no"}',
        b'{"inputs": "a", "truncation_direction": "Up"}',
        b'{"inputs": "\\udfff"}',
    ],
}


@pytest.mark.parametrize(
    ("route", "body"),
    [(route, body) for route, bodies in HOSTILE_BODIES.items() for body in bodies],
    ids=lambda value: value if isinstance(value, str) else value[:40].decode("latin-1"),
)
def test_a_hostile_request_body_is_refused_never_a_500_or_coerced(route: str, body: bytes) -> None:
    """Bodies as a fuzzer or an attacker sends them: each is a 4xx in the route's error format.
    Types are strict, as the real servers' JSON decoders are (`"dimensions": true` is not 1)."""
    from embedify_server.app import create_app

    with TestClient(create_app("fake:16", ServerSettings())) as client:
        answer = client.post(route, content=body, headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text[:200]
    assert "error" in answer.json()
