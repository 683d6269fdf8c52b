"""The engine over real HTTP, against the core's own fake server (embedify.testing.http_fake):
limits, retries, rate limits, splitting, truncation, stopping, resumption."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedify
from embedify.cache import EmbeddingCache
from embedify.engine.executor import PROBE_INPUTS
from embedify.engine.pacing import ADAPTIVE_MAX_IN_FLIGHT
from embedify.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    ConnectionFailedError,
    EmbeddingJobError,
    InputTooLongError,
    InvalidRequestError,
    QuotaExceededError,
)
from embedify.testing import EmbeddingServer, HttpFakeModel, LoopbackServer, Request, Response
from embedify.testing.http_fake import vector_for


@pytest.fixture
def fake() -> EmbeddingServer:
    return EmbeddingServer()


@pytest.fixture
def server(fake: EmbeddingServer) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def expected(texts: list[str], role: str = "document") -> np.ndarray:
    return np.stack([vector_for(role, text) for text in texts])


def varied_texts(count: int) -> list[str]:
    return [f"text {i} " + "word " * (i % 40) for i in range(count)]


def sent_inputs(server: LoopbackServer) -> list[list[str]]:
    return [r.json()["inputs"] for r in server.requests if r.path == "/embed"]


def test_storm_of_429_and_503_keeps_every_row_in_order() -> None:
    fake = EmbeddingServer(error_rate=0.02, rate_limit_every=7, retry_after="0.01", seed=3)
    texts = varied_texts(3000)
    with LoopbackServer(fake) as server:
        result = HttpFakeModel(base_url=server.url, batch_size=16).embed_with_report(texts)
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    assert result.report.failed == 0
    assert result.report.rate_limited == fake.statuses.count(429) > 0
    assert 503 in fake.statuses


def test_a_rate_limited_server_is_paced_not_hammered() -> None:
    # 1,000 tokens per second, and a bucket that holds one second of them (stricter than the
    # per-minute limit the headers announce): the engine must learn the level from the headers.
    fake = EmbeddingServer(tokens_per_minute=60_000, requests_per_minute=6000, bucket_seconds=1)
    texts = [f"text {i} " + "word " * 18 for i in range(120)]  # 2,400 server tokens
    with LoopbackServer(fake) as server:
        result = HttpFakeModel(base_url=server.url).embed_with_report(texts)
    assert result.report.failed == 0
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    assert fake.statuses.count(429) <= 0.1 * len(fake.statuses)


def test_retries_that_never_happened_are_not_counted(server: LoopbackServer) -> None:
    server.fail_next(Response(503, {"error": {"message": "down"}}, headers={"Retry-After": "900"}))
    with pytest.raises(EmbeddingJobError) as caught:
        HttpFakeModel(base_url=server.url).embed(["one text"])
    assert caught.value.report.retries == 0 and caught.value.report.requests == 1


def test_dropped_connections_are_retried(server: LoopbackServer, fake: EmbeddingServer) -> None:
    fake.drop_first = 2
    result = HttpFakeModel(base_url=server.url, max_concurrency=1).embed_with_report(["a", "b"])
    assert np.allclose(result.vectors, expected(["a", "b"]), atol=1e-6)
    assert result.report.retries == 2


def test_name_resolution_fails_after_one_retry_naming_the_host() -> None:
    model = HttpFakeModel(base_url="http://no-such-host.invalid:8080")
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(["one", "two", "three"])
    assert caught.value.report.requests == 2
    error = next(iter(caught.value.failures.values()))
    assert isinstance(error, ConnectionFailedError) and error.name_resolution
    assert "no-such-host.invalid" in str(caught.value)


def test_too_large_batches_are_split(server: LoopbackServer, fake: EmbeddingServer) -> None:
    fake.max_batch = 10  # the server is stricter than the 256 the client declares
    texts = varied_texts(200)
    result = HttpFakeModel(base_url=server.url, max_concurrency=2).embed_with_report(texts)
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    assert max(fake.batch_sizes) <= 10 and result.report.splits > 0


def test_a_timed_out_batch_is_split_not_sent_again_unchanged() -> None:
    fake = EmbeddingServer(latency_per_token=0.01)  # 10 ms per word
    texts = [f"text {i} " + "word " * 8 for i in range(16)]  # 10 words each
    with LoopbackServer(fake) as server:
        model = HttpFakeModel(base_url=server.url, timeout=0.5, max_concurrency=1)
        result = model.embed_with_report(texts)
        batches = [tuple(inputs) for inputs in sent_inputs(server)]
    assert result.report.failed == 0 and result.report.splits >= 1
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)
    assert len(batches) == len(set(batches))  # no request was sent twice


def test_over_long_input_error_names_index_and_sends_nothing(server: LoopbackServer) -> None:
    texts = ["short", "long " * 2000, "short too"]
    with pytest.raises(InputTooLongError, match=r"input 1 has \d+ tokens") as caught:
        HttpFakeModel(base_url=server.url, truncate="error").embed(texts)
    assert caught.value.index == 1 and caught.value.tokens and caught.value.tokens > 512
    assert server.requests == []


def test_over_long_input_is_truncated_and_reported(
    server: LoopbackServer, fake: EmbeddingServer
) -> None:
    # 600 one-letter words: under the client's estimate of 512 tokens, over the server's limit.
    texts = ["fine", "a " * 600, "also fine"]
    result = HttpFakeModel(base_url=server.url).embed_with_report(texts)
    assert result.report.truncated == [1]
    assert 400 in fake.statuses
    assert all(len(text.split()) <= 512 for text in sent_inputs(server)[-1])
    assert np.allclose(result.vectors[[0, 2]], expected(["fine", "also fine"]), atol=1e-6)


def test_server_side_too_long_with_truncate_error_fails_only_that_item(
    server: LoopbackServer,
) -> None:
    with pytest.raises(EmbeddingJobError) as caught:
        HttpFakeModel(base_url=server.url, truncate="error").embed(["fine", "a " * 600])
    assert list(caught.value.failures) == [1]
    assert isinstance(caught.value.failures[1], InputTooLongError)
    assert np.allclose(caught.value.partial[0], expected(["fine"])[0], atol=1e-6)


def test_bad_key_stops_the_job_without_retries(server: LoopbackServer) -> None:
    model = HttpFakeModel(base_url=server.url, api_key="nope", max_concurrency=1, batch_size=5)
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(varied_texts(50))
    assert len(server.requests) == 1  # ten batches planned, one sent
    assert all(isinstance(e, AuthenticationError) for e in caught.value.failures.values())
    assert "nope" not in str(caught.value)


def test_exhausted_quota_cancels_requests_in_flight() -> None:
    fake = EmbeddingServer()
    quota = Response(429, {"error": {"message": "quota", "code": "insufficient_quota"}})

    def handler(request: Request) -> Response:
        count = len(server.requests)
        if count == 3:
            quota.delay = 0.1
            return quota
        response = fake(request)
        response.delay = 0 if count == 1 else 1.0
        return response

    with LoopbackServer(handler) as server:
        model = HttpFakeModel(base_url=server.url, max_concurrency=4, batch_size=2)
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(varied_texts(40))
        sent = len(server.requests)
        time.sleep(1.2)  # anything still running would send its next request by now
        assert len(server.requests) == sent == 5  # the probe, then four in flight
    assert all(isinstance(e, QuotaExceededError) for e in caught.value.failures.values())
    # the three requests in flight were cancelled, not awaited: only the probe's rows are kept
    assert (~np.isnan(caught.value.partial).any(axis=1)).sum() == 2


def test_a_job_stopping_error_stops_every_other_request() -> None:
    calls = 0

    class LosesItsKey(embedify.EmbeddingModel):
        capabilities = embedify.Capabilities(dimension=4)

        async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise ConfigurationError("the key was revoked")
            await asyncio.sleep(0.05)
            return np.ones((len(texts), 4), dtype=np.float32)

    model = LosesItsKey("m", max_concurrency=2, batch_size=1)
    with pytest.raises(ConfigurationError, match="revoked"):
        model.embed([f"text {i}" for i in range(30)])
    after_raise = calls
    time.sleep(0.3)
    assert calls == after_raise <= 4


def test_failures_keep_successes_and_a_rerun_resumes_from_cache(
    server: LoopbackServer, fake: EmbeddingServer, tmp_path: Path
) -> None:
    fake.reject_word = "poison"
    texts = [f"clean text {i}" for i in range(40)] + ["poison pill"]
    # one input per request: a refused request fails all its inputs (the policy does not guess
    # which one was bad), and this test is about the other requests
    model = HttpFakeModel(base_url=server.url, cache=tmp_path / "c.sqlite3", batch_size=1)
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(texts)
    error = caught.value
    assert list(error.failures) == [40] and isinstance(error.failures[40], InvalidRequestError)
    assert "poison" in str(error) and "1 of 41 inputs failed" in str(error)
    assert np.allclose(error.partial[:40], expected(texts[:40]), atol=1e-6)
    assert np.isnan(error.partial[40]).all()

    fake.reject_word = None
    before = len(server.requests)
    rerun = HttpFakeModel(base_url=server.url, cache=tmp_path / "c.sqlite3")
    result = rerun.embed_with_report(texts)
    assert result.report.cached == 40 and result.report.embedded == 1
    assert sent_inputs(server)[before:] == [["poison pill"]]
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)


async def test_an_interrupted_job_resumes_with_only_what_was_not_cached(
    tmp_path: Path,
) -> None:
    fake = EmbeddingServer(latency=0.1)
    texts = [f"passage number {i}" for i in range(60)]
    path = tmp_path / "c.sqlite3"
    with LoopbackServer(fake) as server:
        model = HttpFakeModel(base_url=server.url, cache=path, max_concurrency=2, batch_size=5)
        job = asyncio.ensure_future(model.aembed(texts))
        while EmbeddingCache.open(path).stats()["entries"] < 10:  # two requests stored
            await asyncio.sleep(0.01)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        cached = EmbeddingCache.open(path).stats()["entries"]
        assert 0 < cached < len(texts)
        again = HttpFakeModel(base_url=server.url, cache=path)
        result = await again.aembed_with_report(texts)
    assert result.report.cached == cached
    assert result.report.embedded == len(texts) - cached  # sent: only what was not cached
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)


def test_malformed_response_is_a_clear_error(server: LoopbackServer) -> None:
    server.fail_next(Response(200, {"embeddings": [[0.0] * 32]}))
    with pytest.raises(EmbeddingJobError) as caught:
        HttpFakeModel(base_url=server.url, max_concurrency=1).embed(["one", "two", "three"])
    failure = caught.value.failures[0]
    assert isinstance(failure, BadResponseError) and "for 3 inputs" in str(failure)


def test_duplicates_are_sent_once(server: LoopbackServer, fake: EmbeddingServer) -> None:
    texts = ["same", "other", "same", "same"]
    result = HttpFakeModel(base_url=server.url).embed_with_report(texts)
    assert sum(fake.batch_sizes) == 2 and result.report.deduplicated == 2
    assert np.allclose(result.vectors, expected(texts), atol=1e-6)


def test_roles_reach_the_wire(server: LoopbackServer) -> None:
    model = HttpFakeModel(base_url=server.url)
    model.embed_query("where is the cat?")
    model.embed_documents(["the cat is on the mat"])
    assert [r.json()["role"] for r in server.requests] == ["query", "document"]


def concurrency_peak(**options: Any) -> tuple[int, int]:
    """(most requests the server saw at once, requests) for 400 texts."""
    in_flight = peak = 0
    lock = threading.Lock()
    fake = EmbeddingServer()

    def handler(request: Request) -> Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        try:
            return fake(request)
        finally:
            with lock:
                in_flight -= 1

    with LoopbackServer(handler) as server:
        HttpFakeModel(base_url=server.url, **options).embed(varied_texts(400))
    return peak, len(fake.batch_sizes)


def test_concurrency_is_bounded_and_used() -> None:
    assert concurrency_peak(max_concurrency=4)[0] == 4


def test_a_hosted_api_gets_a_small_first_request_then_one_wave() -> None:
    fake = EmbeddingServer(requests_per_minute=100_000, latency=0.3)  # announces its limits
    with LoopbackServer(fake) as server:
        HttpFakeModel(base_url=server.url).embed(varied_texts(400))
    first, *wave = fake.batch_sizes
    assert first == PROBE_INPUTS and sum(wave) == 400 - PROBE_INPUTS
    # an even share per slot, every slot at once (a self-hosted ramp sends ~20 requests here)
    assert ADAPTIVE_MAX_IN_FLIGHT / 2 < len(wave) <= ADAPTIVE_MAX_IN_FLIGHT + 1


def test_a_job_that_fits_one_request_is_sent_as_one(server: LoopbackServer) -> None:
    HttpFakeModel(base_url=server.url).embed(varied_texts(20))
    assert len(server.requests) == 1


def test_concurrency_grows_past_the_default_while_answers_stay_fast() -> None:
    peak, requests = concurrency_peak()
    assert peak > HttpFakeModel.default_max_concurrency
    assert requests > HttpFakeModel.default_max_concurrency


async def test_sync_api_works_inside_a_running_loop(server: LoopbackServer) -> None:
    vectors = HttpFakeModel(base_url=server.url).embed(["inside a notebook"])  # loop running
    assert np.allclose(vectors, expected(["inside a notebook"]), atol=1e-6)
    async_vectors = await HttpFakeModel(base_url=server.url).aembed(["inside a notebook"])
    assert np.allclose(async_vectors, vectors)


async def test_local_models_do_not_block_the_event_loop() -> None:
    class SlowLocal(embedify.EmbeddingModel):
        capabilities = embedify.Capabilities(dimension=4)

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


def test_client_side_budget_spaces_requests(server: LoopbackServer) -> None:
    model = HttpFakeModel(base_url=server.url, requests_per_minute=60, batch_size=1)
    model.embed([f"text {i}" for i in range(62)])
    arrivals = [request.received for request in server.requests]
    assert arrivals[59] - arrivals[0] < 1.0 <= arrivals[61] - arrivals[0]  # a minute's burst
    assert arrivals[61] - arrivals[60] >= 0.9  # then one per second


def test_engine_state_is_not_written_onto_the_model(server: LoopbackServer) -> None:
    model = HttpFakeModel(base_url=server.url)
    before = dict(vars(model))
    model.embed(["a"])
    assert {k: v for k, v in vars(model).items() if k != "dimension"} == {
        k: v for k, v in before.items() if k != "dimension"
    }
