"""One scheduler: a local model gets each of the server's batches in one call of its batch
method, still within its limits and checked; a remote upstream still goes through the engine,
which retries its 429s."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from embedify_tei.testing import FakeTEI
from starlette.testclient import TestClient

import embedify
from embedify.testing.loopback import LoopbackServer, Response

Serve = Callable[..., TestClient]


class Recording(embedify.EmbeddingModel):
    """A local model (no native async call) that records the size of each batch it is given.
    ``"t 7"`` -> [7, 1, 0, 0]; a text containing "wide" gets a row one too wide, and "boom"
    raises as a model's bug would."""

    provider = "recording"
    default_model_id = "recording"
    capabilities = embedify.Capabilities(
        dimension=4,
        limits=embedify.Limits(max_inputs_per_request=64),
        max_concurrency=8,  # the engine would spread a batch over 8 requests
    )

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        with self._lock:
            self.batches.append(len(texts))
        if any("boom" in text for text in texts):
            raise RuntimeError("boom")
        width = 5 if any("wide" in text for text in texts) else 4
        rows = np.zeros((len(texts), width), np.float32)
        for row, text in enumerate(texts):
            rows[row, :2] = [float(text.split()[-1]) if text[-1].isdigit() else 1.0, 1.0]
        return rows


def texts(count: int) -> list[str]:
    return [f"t {number}" for number in range(1, count + 1)]


def test_a_local_models_batch_is_one_call_of_its_batch_method(serve: Serve) -> None:
    model = Recording()
    client = serve(model)
    assert model.batches == [1]  # the warm-up
    answer = client.post("/embed", json={"inputs": texts(24), "normalize": False})
    assert answer.status_code == 200, answer.text
    assert model.batches == [1, 24]
    assert [row[0] for row in answer.json()] == list(range(1, 25))  # each row in its place


def test_the_models_batch_size_option_caps_the_servers_batches(serve: Serve) -> None:
    model = Recording(batch_size=5)
    client = serve(model)
    assert client.post("/embed", json={"inputs": texts(12)}).status_code == 200
    assert model.batches[1:] == [5, 5, 2]
    assert client.get("/info").json()["max_batch_requests"] == 5


def test_a_local_models_rows_of_another_width_are_refused_naming_the_model(serve: Serve) -> None:
    client = serve(Recording())
    answer = client.post("/embed", json={"inputs": ["wide 1"]})
    assert answer.status_code == 424
    assert "recording" in answer.json()["error"]
    assert client.post("/embed", json={"inputs": ["t 1"]}).status_code == 200


def test_a_local_models_bug_fails_its_request_and_the_server_goes_on(serve: Serve) -> None:
    client = serve(Recording())
    answer = client.post("/v1/embeddings", json={"input": ["boom 1"]})
    assert answer.status_code == 500
    assert "raised RuntimeError: boom" in answer.json()["error"]["message"]
    assert client.post("/v1/embeddings", json={"input": ["t 1"]}).status_code == 200


def test_a_remote_upstream_still_goes_through_the_engine_which_retries_a_429(
    serve: Serve,
) -> None:
    with LoopbackServer(FakeTEI()) as upstream:
        client = serve(embedify.get_model(f"tei:{upstream.url}"))
        embeds_before = sum(request.path == "/embed" for request in upstream.requests)
        upstream.fail_next(
            Response(429, {"error": "Model is overloaded"}, headers={"Retry-After": "0"})
        )
        answer = client.post("/v1/embeddings", json={"input": ["hello"]})
        assert answer.status_code == 200, answer.text
        embeds = sum(request.path == "/embed" for request in upstream.requests)
    assert embeds - embeds_before == 2  # refused once, then answered
