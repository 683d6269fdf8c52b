"""Dynamic batching: concurrent requests share model batches, and get their own rows back.

Requests put their inputs on one queue; workers (as many as the model runs batches at once)
take the batch that :func:`~embedify_server.scheduling.select_batch` chooses, send it to the
model (a local model's batch method at once, a remote upstream through the engine: see
:mod:`~embedify_server.upstream`) and hand each row back to its request. The queue is bounded
in inputs: a request that does not fit is refused with the time it would take to work the
queue off. Closing stops new requests and finishes every accepted one, waiting at most its
timeout: a batch still running then (an upstream that asked for an hours-long pause) is
cancelled and its requests answered with :class:`ShuttingDown`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import embedify
from embedify_server.metrics import Metrics
from embedify_server.scheduling import (
    QueuedInput,
    admits,
    retry_after_seconds,
    select_batch,
    updated_rate,
)
from embedify_server.upstream import upstream_for

#: How many best-ranked inputs, per batch slot, the selection may pick from by length.
WINDOW_PER_BATCH_INPUT = 4


class Overloaded(Exception):
    """The queue is full; ``retry_after`` is whole seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Model is overloaded")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is closing and accepts no new requests."""


@dataclass(eq=False)
class _Request:
    size: int
    future: asyncio.Future[np.ndarray]
    rows: dict[int, np.ndarray] = field(default_factory=dict)

    def deliver(self, position: int, vector: np.ndarray) -> None:
        if self.future.done():  # failed or abandoned by its client
            return
        self.rows[position] = vector
        if len(self.rows) == self.size:
            self.future.set_result(np.stack([self.rows[i] for i in range(self.size)]))

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(eq=False)
class _Queued:
    item: QueuedInput
    text: str
    request: _Request


class Batcher:
    def __init__(
        self,
        model: embedify.EmbeddingModel,
        *,
        max_batch_inputs: int,
        max_batch_tokens: int,
        max_queued_inputs: int,
        batches_in_flight: int,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.upstream = upstream_for(model)
        self.max_batch_inputs = max_batch_inputs
        self.max_batch_tokens = max_batch_tokens
        self.max_queued_inputs = max_queued_inputs
        self.batches_in_flight = batches_in_flight
        self.metrics = metrics
        self.permits_used = 0
        self.inputs_per_second: float | None = None
        self.accepting = False
        self._queue: list[_Queued] = []
        self._unanswered: set[_Request] = set()
        self._arrivals = itertools.count()
        self._ready = asyncio.Condition()
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.accepting = True
        self._workers = [
            asyncio.create_task(self._work(), name=f"embedify-batch-worker-{n}")
            for n in range(self.batches_in_flight)
        ]

    async def close(self, timeout: float) -> None:
        """Refuse new requests and answer every accepted one; after ``timeout`` seconds, cancel
        the batches still running and fail the requests left with :class:`ShuttingDown`."""
        self.accepting = False
        async with self._ready:
            self._ready.notify_all()
        running = [worker for worker in self._workers if not worker.done()]
        if not running:
            return
        finished, stuck = await asyncio.wait(running, timeout=timeout)
        for worker in stuck:
            worker.cancel()
        for request in list(self._unanswered):
            request.fail(ShuttingDown())
        await asyncio.gather(*stuck, return_exceptions=True)
        for worker in finished:
            worker.result()  # a worker's own failure is not hidden

    async def embed(self, texts: Sequence[str], tokens: Sequence[int], role: str) -> np.ndarray:
        """Vectors of ``texts`` (already validated and cut to the model's limit), in order."""
        if not self.accepting:
            raise ShuttingDown()
        if not admits(self.permits_used, len(texts), self.max_queued_inputs):
            raise Overloaded(retry_after_seconds(self.permits_used, self.inputs_per_second))
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        request = _Request(len(texts), future)
        self._take_permits(len(texts))
        self._unanswered.add(request)
        future.add_done_callback(lambda _: self._answered(request))
        number = next(self._arrivals)
        async with self._ready:
            self._queue.extend(
                _Queued(QueuedInput(number, position, count, role), text, request)
                for position, (text, count) in enumerate(zip(texts, tokens))
            )
            self.metrics.queue_inputs.set(len(self._queue))
            self._ready.notify()
        return await future

    def _answered(self, request: _Request) -> None:
        self._unanswered.discard(request)
        self._take_permits(-request.size)

    def _take_permits(self, count: int) -> None:
        self.permits_used += count
        self.metrics.permits_used.set(self.permits_used)

    async def _work(self) -> None:
        while True:
            async with self._ready:
                await self._ready.wait_for(lambda: bool(self._queue) or not self.accepting)
                self._queue = [queued for queued in self._queue if not queued.request.future.done()]
                if not self._queue:
                    if self.accepting:
                        continue
                    self._ready.notify_all()  # let the other workers see the end too
                    return
                chosen = select_batch(
                    [queued.item for queued in self._queue],
                    max_inputs=self.max_batch_inputs,
                    max_tokens=self.max_batch_tokens,
                    window=WINDOW_PER_BATCH_INPUT * self.max_batch_inputs,
                )
                taken = set(chosen)
                batch = [self._queue[i] for i in chosen]
                self._queue = [queued for i, queued in enumerate(self._queue) if i not in taken]
                self.metrics.queue_inputs.set(len(self._queue))
                if self._queue:
                    self._ready.notify()  # another idle worker may take the next batch
            await self._run(batch)

    async def _run(self, batch: list[_Queued]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        failures = await self._embed_into_requests(batch)
        seconds = loop.time() - started
        self.inputs_per_second = updated_rate(self.inputs_per_second, len(batch), seconds)
        self.metrics.batch_inputs.observe(len(batch))
        self.metrics.batch_tokens.observe(sum(queued.item.tokens for queued in batch))
        self.metrics.batch_seconds.observe(seconds)
        failed = {id(queued.request) for queued in failures}
        if len({id(queued.request) for queued in batch}) == 1 or not failed:
            for queued, error in failures.items():
                queued.request.fail(error)
            return
        # A refused batch mixed several requests: embed each failed request on its own, so
        # that one request's bad input fails that request and not the others.
        for request_id in failed:
            alone = [queued for queued in batch if id(queued.request) == request_id]
            for queued, error in (await self._embed_into_requests(alone)).items():
                queued.request.fail(error)

    async def _embed_into_requests(self, batch: list[_Queued]) -> dict[_Queued, BaseException]:
        """Embed ``batch``, deliver each row to its request, and return the inputs that failed."""
        try:
            vectors, failures = await self.upstream.embed(
                [queued.text for queued in batch], batch[0].item.role
            )
        except Exception as error:
            return dict.fromkeys(batch, error)
        for row, queued in enumerate(batch):
            if row not in failures:
                queued.request.deliver(queued.item.position, vectors[row])
        return {batch[row]: error for row, error in failures.items()}
