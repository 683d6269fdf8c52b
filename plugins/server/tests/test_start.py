"""`embedify serve` at start: a taken port is one line and exit 1; the batch budget that help
promises is the one /info shows and the batcher keeps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from embedify_server.app import ServerSettings
from embedify_server.listening import port_owner
from embedify_server.scheduling import DEFAULT_MAX_BATCH_TOKENS, batch_token_budget
from starlette.testclient import TestClient

import embedify
from embedify.cli import cli
from embedify.errors import ConfigurationError
from embedify.fake import FakeEmbeddingModel

Serve = Callable[..., TestClient]


def test_a_taken_port_is_one_line_with_its_holder_and_exit_status_1() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = ["serve", "fake:16", "--no-auth", "--port", str(port)]
        finished = subprocess.run(
            [sys.executable, "-m", "embedify", *command],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert finished.returncode == 1, finished.stderr
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr  # no uvicorn log line, no traceback
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert f"by pid {os.getpid()}" in lines[0]  # this test holds it
    assert "--port" in lines[0]


def test_the_holder_of_a_port_is_found_and_a_free_port_has_none() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        if not os.path.exists("/proc/net/tcp"):
            pytest.skip("the holder is read from /proc (Linux)")
        name = Path("/proc/self/comm").read_text().strip()
        assert port_owner(port) == f"pid {os.getpid()} ({name})"
    assert port_owner(port) is None


class BudgetedModel(FakeEmbeddingModel):
    """A fake that takes at most 1024 tokens per request, as the local model does by default,
    and records the padded size (inputs x longest input) of every batch it is sent."""

    capabilities = replace(
        FakeEmbeddingModel.capabilities,
        limits=embedify.Limits(
            max_inputs_per_request=256, max_tokens_per_request=1024, max_tokens_per_input=512
        ),
    )
    padded_batches: list[int] = []

    def embed_batch(self, texts: list[str], role: str) -> embedify.model.Vectors:
        tokens = self.count_tokens(texts)
        self.padded_batches.append(len(texts) * max(tokens))
        return super().embed_batch(texts, role)  # type: ignore[arg-type]


def test_batch_token_budget_is_the_models_own_capped_at_teis_default() -> None:
    assert batch_token_budget(None, 1024) == 1024
    assert batch_token_budget(None, 300_000) == DEFAULT_MAX_BATCH_TOKENS
    assert batch_token_budget(None, None) == DEFAULT_MAX_BATCH_TOKENS
    assert batch_token_budget(500, 1024) == 500
    with pytest.raises(ConfigurationError, match="pass at most 1024"):
        batch_token_budget(2048, 1024)


def test_info_shows_the_budget_the_batcher_keeps(serve: Serve) -> None:
    model = BudgetedModel("16")
    client = serve(model)
    info = client.get("/info").json()
    assert info["max_batch_tokens"] == 1024
    model.padded_batches.clear()
    texts = [" ".join(f"w{i}" for i in range(100 + n)) for n in range(32)]
    assert client.post("/embed", json={"inputs": texts}).status_code == 200
    assert model.padded_batches and max(model.padded_batches) <= info["max_batch_tokens"]
    assert serve("fake:16").get("/info").json()["max_batch_tokens"] == DEFAULT_MAX_BATCH_TOKENS


def test_help_states_the_default_info_shows() -> None:
    help_text = " ".join(CliRunner().invoke(cli, ["serve", "--help"]).output.split())
    assert "Default: the model's own budget per request, at most 16384" in help_text
    assert "[default: 16384]" not in help_text
    assert ServerSettings().max_batch_tokens is None  # decided from the model, as help says


def test_a_budget_past_the_models_limit_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    embedify.register_model("budgeted", BudgetedModel, default_model="16")
    monkeypatch.setenv("EMBEDIFY_SERVER_API_KEY", "k" * 16)
    result = CliRunner().invoke(
        cli, ["serve", "budgeted", "--port", "0", "--max-batch-tokens", "16384"]
    )
    assert result.exit_code == 2, result.output
    assert "--max-batch-tokens 16384 is more than the model takes in one request" in result.output


def test_local_batches_1024_tokens_as_the_server_page_says(serve: Serve) -> None:
    assert serve("local").get("/info").json()["max_batch_tokens"] == 1024


def test_ctrl_c_stops_the_server_with_exit_status_130() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["serve", "fake:16", "--no-auth", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(
        [sys.executable, "-m", "embedify", *command], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120  # a readiness wait, not a timing assertion
        while not healthy(f"http://127.0.0.1:{port}/health"):
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False
