"""The dynamic batcher against a model whose batches the test holds and releases."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from embedify_server.batcher import Batcher, Overloaded, ShuttingDown
from embedify_server.metrics import Metrics

import embedify


class GatedModel(embedify.EmbeddingModel):
    """Records each merged batch the server hands to the engine, and answers when the test
    opens the gate. ``"t 7"`` -> [7, 1, 0, 0];
    a text containing "bad" is refused."""

    provider = "gated"
    default_model_id = "gated"
    capabilities = embedify.Capabilities(
        dimension=4, limits=embedify.Limits(max_inputs_per_request=1000), max_concurrency=1
    )

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.batches: list[list[str]] = []  # what the server handed to the engine, per call
        self.gate = asyncio.Event()

    async def aembed_with_report(
        self, texts: Any, role: embedify.Role = "document"
    ) -> embedify.EmbeddingResult:
        self.batches.append(list(texts))
        return await super().aembed_with_report(texts, role)

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        await self.gate.wait()
        if any("bad" in text for text in texts):
            raise embedify.InvalidRequestError("the provider refused this batch")
        return np.array([[float(text.split()[-1]), 1, 0, 0] for text in texts], np.float32)


def texts(*numbers: int) -> list[str]:
    return [f"t {n}" for n in numbers]


async def started(model: GatedModel, **settings: Any) -> Batcher:
    options = {
        "max_batch_inputs": 64,
        "max_batch_tokens": 10_000,
        "max_queued_inputs": 512,
        "batches_in_flight": 1,
        **settings,
    }
    batcher = Batcher(model, metrics=Metrics(), **options)
    await batcher.start()
    return batcher


def submit(batcher: Batcher, items: list[str]) -> asyncio.Task[np.ndarray]:
    return asyncio.ensure_future(batcher.embed(items, [len(text) for text in items], "document"))


async def until(condition: Any) -> None:
    """Let the event loop run until ``condition()`` holds (no wall-clock waiting)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def firsts(vectors: np.ndarray) -> list[int]:
    return [int(value) for value in vectors[:, 0]]


async def test_concurrent_requests_share_a_model_batch_and_get_their_own_rows() -> None:
    model = GatedModel()
    batcher = await started(model)
    first = submit(batcher, texts(1))
    await until(lambda: len(model.batches) == 1)  # the model is busy with the first request
    second, third = submit(batcher, texts(2, 3, 4)), submit(batcher, texts(5, 6))
    await until(lambda: batcher.permits_used == 6)
    model.gate.set()
    assert firsts(await first) == [1]
    assert firsts(await second) == [2, 3, 4]
    assert firsts(await third) == [5, 6]
    assert len(model.batches) == 2  # three requests, two model batches
    assert sorted(model.batches[1]) == texts(2, 3, 4, 5, 6)
    await batcher.close(timeout=60)


async def test_a_full_queue_refuses_a_request_and_says_when_to_retry() -> None:
    model = GatedModel()
    batcher = await started(model, max_queued_inputs=4)
    held = submit(batcher, texts(1, 2, 3))
    await until(lambda: len(model.batches) == 1)
    with pytest.raises(Overloaded) as refused:
        await batcher.embed(texts(4, 5), [3, 3], "document")
    assert refused.value.retry_after >= 1
    fits = submit(batcher, texts(6))  # one permit is still free
    model.gate.set()
    assert firsts(await held) == [1, 2, 3]
    assert firsts(await fits) == [6]
    assert batcher.permits_used == 0  # answered requests give their permits back
    await batcher.close(timeout=60)


async def test_closing_refuses_new_requests_and_answers_every_accepted_one() -> None:
    model = GatedModel()
    batcher = await started(model, max_batch_inputs=2)
    accepted = [submit(batcher, texts(n, n + 1, n + 2)) for n in (0, 10, 20)]
    await until(lambda: len(model.batches) == 1)
    closing = asyncio.ensure_future(batcher.close(timeout=60))
    await until(lambda: not batcher.accepting)
    with pytest.raises(ShuttingDown):
        await batcher.embed(texts(99), [4], "document")
    model.gate.set()
    await closing
    assert [firsts(await task) for task in accepted] == [[0, 1, 2], [10, 11, 12], [20, 21, 22]]


async def test_a_refused_input_fails_its_own_request_not_its_batch_mates() -> None:
    model = GatedModel()
    batcher = await started(model)
    first = submit(batcher, texts(1))
    await until(lambda: len(model.batches) == 1)
    good, bad = submit(batcher, texts(2, 3)), submit(batcher, ["bad 4", "t 5"])
    await until(lambda: batcher.permits_used == 5)
    model.gate.set()
    assert firsts(await first) == [1]
    assert firsts(await good) == [2, 3]
    with pytest.raises(embedify.InvalidRequestError):
        await bad
    await batcher.close(timeout=60)


async def test_a_small_request_is_served_between_the_batches_of_a_big_one() -> None:
    model = GatedModel()
    batcher = await started(model, max_batch_inputs=4)
    first = submit(batcher, texts(0))
    await until(lambda: len(model.batches) == 1)
    big = submit(batcher, texts(*range(100, 116)))
    small = submit(batcher, texts(7))
    await until(lambda: batcher.permits_used == 18)
    model.gate.set()
    await asyncio.gather(first, big, small)
    assert "t 7" in model.batches[1]  # not after the big request's four batches
    assert len(model.batches) == 1 + 5
    await batcher.close(timeout=60)
