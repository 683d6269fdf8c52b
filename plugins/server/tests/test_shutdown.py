"""SIGTERM on a real ``uvicorn`` process: every accepted request is answered before it exits."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

SCRIPT = Path(__file__).with_name("slow_server.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: object, what: str) -> None:
    """Poll ``condition()`` for up to a minute (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def started() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stdout.read()}")  # type: ignore[union-attr]
            return httpx.get(f"{url}/health").status_code == 200

        wait_for(started, "the server to start")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def permits_used(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("embedify_permits_used "):
            return float(line.split()[1])
    raise AssertionError("no embedify_permits_used in /metrics")


def test_sigterm_drains_every_accepted_request(server: tuple[subprocess.Popen[str], str]) -> None:
    process, url = server
    requests = [[f"t {n}", f"t {n + 1}"] for n in range(0, 12, 2)]  # six batches of two

    def post(texts: list[str]) -> httpx.Response:
        return httpx.post(f"{url}/embed", json={"inputs": texts, "normalize": False}, timeout=60)

    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(post, texts) for texts in requests]
        wait_for(lambda: permits_used(url) == 12, "all six requests to be accepted")
        process.send_signal(signal.SIGTERM)
        responses = [future.result() for future in futures]

    assert [response.status_code for response in responses] == [200] * 6
    firsts = [[int(vector[0]) for vector in response.json()] for response in responses]
    assert firsts == [[n, n + 1] for n in range(0, 12, 2)]
    # uvicorn finishes its shutdown, then re-raises the signal it caught.
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    log = process.stdout.read() if process.stdout else ""
    assert "Application shutdown complete" in log  # the lifespan ran: the batcher was closed
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")
