"""The engine against a loopback HTTP server: limits, retries, throttling, splitting,
truncation, failures and resumption, driven through the example Acme plugin's real client."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from embedify_acme.server import API_KEY, AcmeServer, vector_for

import embedify
from embedify.engine import plan_batches
from embedify.errors import (
    AuthenticationError,
    BadResponseError,
    EmbeddingJobError,
    InputTooLongError,
    InvalidRequestError,
)
from embedify.testing import LoopbackServer


def acme_model(server: LoopbackServer, **options: Any) -> embedify.EmbeddingModel:
    return embedify.get_model(
        "acme:acme-embed-mini", base_url=server.url, api_key=API_KEY, **options
    )


def expected(texts: list[str], role: str = "document") -> np.ndarray:
    return np.array([vector_for(role, t, 64) for t in texts], dtype=np.float32)


def varied_texts(count: int) -> list[str]:
    return [f"text {i} " + "word " * (i % 40) for i in range(count)]


def test_plan_respects_every_limit_and_fills_concurrency() -> None:
    tokens = [((i * 37) % 300) + 1 for i in range(5000)]
    plan = plan_batches(tokens, max_inputs=2048, max_tokens=30_000, concurrency=16)
    assert sorted(i for batch in plan for i in batch) == list(range(5000))
    assert all(len(batch) <= 2048 for batch in plan)
    assert all(sum(tokens[i] for i in batch) <= 30_000 for batch in plan)
    assert len(plan) >= 16  # every slot gets work


def test_storm_of_429_and_503_keeps_every_row_in_order() -> None:
    behaviour = AcmeServer(error_rate=0.02, rate_limit_every=7, retry_after="0.01", seed=3)
    texts = varied_texts(5000)
    with LoopbackServer(behaviour) as server:
        result = acme_model(server, max_concurrency=16, batch_size=16).embed_with_report(texts)
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    assert result.report.rate_limited > 0 and result.report.retries >= result.report.rate_limited
    assert 429 in behaviour.statuses and 503 in behaviour.statuses
    assert result.report.failed == 0


def test_retry_after_is_honoured() -> None:
    behaviour = AcmeServer(rate_limit_every=1, retry_after="0.4")
    arrivals: list[float] = []

    def handler(request: Any) -> Any:
        arrivals.append(time.monotonic())
        if len(arrivals) > 1:
            behaviour.rate_limit_every = 0
        return behaviour(request)

    with LoopbackServer(handler) as server:
        result = acme_model(server).embed_with_report(["one text"])
    assert result.report.rate_limited == 1
    assert arrivals[1] - arrivals[0] >= 0.4


def test_dropped_connections_are_retried(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, behaviour = acme
    behaviour.drop_first = 2
    result = acme_model(server).embed_with_report(["a text", "another text"])
    assert np.allclose(result.vectors, expected(["a text", "another text"]), atol=1e-6)
    assert result.report.retries >= 1


def test_too_large_batches_are_split(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, behaviour = acme
    behaviour.max_batch = 10  # the server is stricter than the 64 the plugin declares
    texts = varied_texts(200)
    result = acme_model(server, max_concurrency=2).embed_with_report(texts)
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    assert max(behaviour.batch_sizes) <= 10 and result.report.splits > 0


def test_over_long_input_error_names_index_and_sends_nothing(
    acme: tuple[LoopbackServer, AcmeServer],
) -> None:
    server, _ = acme
    texts = ["short", "long " * 2000, "short too"]
    with pytest.raises(InputTooLongError, match=r"input 1 has \d+ tokens") as caught:
        acme_model(server, truncate="error").embed(texts)
    assert caught.value.index == 1 and caught.value.tokens and caught.value.tokens > 512
    assert server.requests == []


def test_over_long_input_is_truncated_and_reported(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, behaviour = acme
    # 600 one-letter words: under the client's estimate of 512 tokens, over the server's limit.
    texts = ["fine", "a " * 600, "also fine"]
    result = acme_model(server, truncate="end").embed_with_report(texts)
    assert result.report.truncated == [1]
    assert 400 in behaviour.statuses
    sent = [r.json()["inputs"] for r in server.requests if r.json() and "inputs" in r.json()]
    assert all(len(t.split()) <= 512 for batch in sent[-1:] for t in batch)
    assert np.allclose(result.vectors[[0, 2]], expected(["fine", "also fine"]), atol=1e-6)


def test_server_side_too_long_with_truncate_error_fails_only_that_item(
    acme: tuple[LoopbackServer, AcmeServer],
) -> None:
    server, _ = acme
    with pytest.raises(EmbeddingJobError) as caught:
        acme_model(server, truncate="error").embed(["fine", "a " * 600])
    assert list(caught.value.failures) == [1]
    assert isinstance(caught.value.failures[1], InputTooLongError)
    assert np.allclose(caught.value.partial[0], expected(["fine"])[0], atol=1e-6)


def test_bad_key_stops_the_job_without_retries(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, _ = acme
    model = embedify.get_model(
        "acme:acme-embed-mini", base_url=server.url, api_key="nope", max_concurrency=1, batch_size=5
    )
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(varied_texts(50))
    assert len(server.requests) == 1  # ten batches planned, one sent
    assert all(isinstance(e, AuthenticationError) for e in caught.value.failures.values())
    assert "nope" not in str(caught.value)


def test_failures_keep_successes_and_a_rerun_resumes_from_cache(
    acme: tuple[LoopbackServer, AcmeServer],
) -> None:
    server, behaviour = acme
    behaviour.reject_word = "poison"
    texts = [f"clean text {i}" for i in range(40)] + ["poison pill"]
    model = acme_model(server, cache=True, batch_size=4)
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(texts)
    error = caught.value
    assert list(error.failures) == [40] and isinstance(error.failures[40], InvalidRequestError)
    assert "poison" in str(error) and "1 of 41 inputs failed" in str(error)
    assert np.allclose(error.partial[:40], expected(texts[:40]), atol=1e-6)
    assert np.isnan(error.partial[40]).all()

    behaviour.reject_word = None
    before = len(server.requests)
    result = acme_model(server, cache=True).embed_with_report(texts)
    assert result.report.cached == 40 and result.report.embedded == 1
    assert len(server.requests) - before == 1
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)


def test_malformed_response_is_a_clear_error(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, behaviour = acme
    behaviour.malformed = True
    with pytest.raises(EmbeddingJobError) as caught:
        acme_model(server, max_concurrency=1).embed(["one", "two", "three"])
    failure = caught.value.failures[0]
    assert isinstance(failure, BadResponseError) and "for 3 inputs" in str(failure)


def test_duplicates_are_sent_once(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, behaviour = acme
    texts = ["same", "other", "same", "same"]
    result = acme_model(server).embed_with_report(texts)
    assert sum(behaviour.batch_sizes) == 2 and result.report.deduplicated == 2
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)


def test_roles_reach_the_wire(acme: tuple[LoopbackServer, AcmeServer]) -> None:
    server, _ = acme
    model = acme_model(server)
    model.embed_query("where is the cat?")
    model.embed_documents(["the cat is on the mat"])
    assert [r.json()["input_type"] for r in server.requests] == ["query", "document"]


def test_concurrency_is_bounded_and_used() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    behaviour = AcmeServer()

    def handler(request: Any) -> Any:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        try:
            return behaviour(request)
        finally:
            with lock:
                in_flight -= 1

    with LoopbackServer(handler) as server:
        acme_model(server, max_concurrency=4).embed(varied_texts(400))
    assert peak == 4


async def test_sync_api_works_inside_a_running_loop(
    acme: tuple[LoopbackServer, AcmeServer],
) -> None:
    server, _ = acme
    vectors = acme_model(server).embed(["inside a notebook"])  # sync call, loop running
    assert np.allclose(vectors, expected(["inside a notebook"]), atol=1e-6)
    async_vectors = await acme_model(server).aembed(["inside a notebook"])
    assert np.allclose(async_vectors, vectors)


async def test_local_models_do_not_block_the_event_loop() -> None:
    class SlowLocal(embedify.EmbeddingModel):
        dimension = 4

        def embed_batch(self, texts: list[str], role: embedify.Role) -> Any:
            time.sleep(0.3)
            return np.ones((len(texts), 4), dtype=np.float32)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await SlowLocal("slow").aembed(["a", "b"])
    task.cancel()
    assert ticks >= 10
