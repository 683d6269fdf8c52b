"""A server that answers its headers, then trickles the body a byte at a time (slowloris in
reverse): every read succeeds before the HTTP library's read timeout, so only a deadline on the
whole request ends it. The `timeout` option is that deadline, whatever the provider."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import embedify
from embedify.errors import EmbeddingJobError, RequestTimeoutError

pytestmark = pytest.mark.faults

TIMEOUT = 1.5  # the model's option: seconds for one whole request
PROMPTLY = 30.0  # the test's guard; the server would trickle for far longer


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Answers 200 with a JSON content type and a large Content-Length, then one byte every
    0.2 s, for at most two minutes per connection (bounded, and it stops by itself)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 100000\r\n\r\n["
                )
                ends = time.monotonic() + 120
                while not stop.is_set() and time.monotonic() < ends:
                    connection.sendall(b" ")
                    stop.wait(0.2)
            except OSError:
                return  # the client gave up: that is the point

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


PROVIDERS = {
    "openai": ("openai:text-embedding-3-small", "/v1"),
    "jina": ("jina:jina-embeddings-v3", "/v1"),
    "cohere": ("cohere:embed-english-v3.0", ""),
    "tei": ("tei", ""),
    "voyage": ("voyage:voyage-3.5", "/v1"),
    "mistral": ("mistral:mistral-embed", "/v1"),
    "gemini": ("gemini:gemini-embedding-001", "/v1beta"),
    "ollama": ("ollama:nomic-embed-text", ""),
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_body_trickled_forever_ends_at_the_timeout_option(
    trickling_server: str, provider: str
) -> None:
    pytest.importorskip(f"embedify_{provider}", reason=f"the {provider} plugin is not installed")
    name, path = PROVIDERS[provider]
    where = {"base_url": f"{trickling_server}{path}", "api_key": "sk-test"}
    if provider == "tei":
        name, where = f"tei:{trickling_server}", {}
    model = embedify.get_model(name, **where, timeout=TIMEOUT, max_retries=0)
    with pytest.raises((EmbeddingJobError, RequestTimeoutError)) as caught:
        await asyncio.wait_for(model.aembed(["one text"]), PROMPTLY)
    failures = getattr(caught.value, "failures", {0: caught.value})  # tei: its GET /info
    assert all(isinstance(error, RequestTimeoutError) for error in failures.values())
