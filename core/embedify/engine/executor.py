"""Runs a job's requests: forms each request when a slot and the rate limits allow, sends it,
and carries out what the policy decides about failures.

All requests of a job are tasks the executor owns: when one is decided to stop the job (bad
key, exhausted quota, wrong configuration), the others, queued, waiting to retry or in flight,
are cancelled at once, so no request is sent after the job has failed.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from embedify.engine import pacing, planning, policy
from embedify.engine.vectors import checked
from embedify.errors import (
    BatchTooLargeError,
    ConfigurationError,
    PermanentError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
)

if TYPE_CHECKING:
    from embedify.engine.pacing import Pacer
    from embedify.engine.sizing import RequestSizer
    from embedify.protocol import ProviderModel as EmbeddingModel
    from embedify.protocol import Role, Vectors
    from embedify.report import Report

#: How often a job blocked by other jobs' requests of the same model looks again.
_POLL = 0.05
#: Inputs in the lone first request to a remote model when the job needs more than one: its
#: answer tells the limits and the latency, and the rest of the job waits for it.
PROBE_INPUTS = 4


class ProviderInterrupted(Exception):
    """A provider call raised ``KeyboardInterrupt`` or ``SystemExit`` (Ctrl-C inside a model's
    worker thread). Raised inside the engine's event loop, it would stop the loop's thread and
    leave the caller waiting forever; the job stops and ``run_sync`` raises the original."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__} in a provider call")
        self.original = original


@dataclass
class Batch:
    """One request's inputs (caller indices) and what happened to it so far."""

    indices: list[int]
    errors: int = 0
    rate_limits: int = 0
    sent: bool = False


@dataclass
class Work:
    """What to send for each input: the text (cut when needed) and its tokens."""

    texts: dict[int, str]
    tokens: dict[int, int]
    shrinks: dict[int, int] = field(default_factory=dict)


class Executor:
    """The requests of one job that could not be served from the cache."""

    def __init__(
        self,
        model: EmbeddingModel,
        role: Role,
        work: Work,
        report: Report,
        *,
        pacer: Pacer,
        sizer: RequestSizer,
        settings: policy.Settings,
        provider_dimension: int | None,
        max_inputs: int | None,
        on_done: Callable[[list[int], Vectors], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.role = role
        self.work = work
        self.report = report
        self.pacer = pacer
        self.sizer = sizer
        # Remote models cap the waits their server may ask for with their own option.
        cap = getattr(model.options, "max_retry_wait", settings.max_retry_wait)
        self.settings = replace(settings, max_retry_wait=cap)
        self.provider_dimension = provider_dimension
        self.max_inputs = max_inputs
        self.on_done = on_done
        self.clock = clock
        self.native_async = model.info.native_async
        self.failures: dict[int, ProviderError] = {}
        self.finished: set[int] = set()
        self.stopped_by: ProviderError | ConfigurationError | None = None
        self.interrupted: ProviderInterrupted | None = None

    async def run(self, order: list[int]) -> dict[int, ProviderError]:
        """Embed the inputs ``order`` names (longest first); return the failed ones."""
        self.started = self.clock()
        self.queue = deque(order)
        self.ready: deque[Batch] = deque()  # formed batches due now: retries, halves
        self.tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()
        try:
            while self.stopped_by is None and (self.queue or self.ready or self.tasks):
                self.changed.clear()
                if not (self.queue or self.ready):
                    await self._wait(None)
                    continue
                if self.pacer.in_flight >= self.pacer.allowed_in_flight():
                    await self._wait(_POLL)
                    continue
                batch = self.ready.popleft() if self.ready else self._next_batch()
                tokens = self._tokens(batch)
                delay = self.pacer.delay_before(tokens, self.clock(), self.settings.max_retry_wait)
                if delay > 0:
                    self.ready.appendleft(batch)
                    await self._wait(delay)
                    continue
                self._launch(batch, tokens)
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.interrupted is not None:
            raise self.interrupted
        if isinstance(self.stopped_by, ConfigurationError):
            raise self.stopped_by
        if self.stopped_by is not None:
            left = [i for i in self.work.texts if i not in self.finished and i not in self.failures]
            self._fail(left, self.stopped_by)
        return self.failures

    async def _wait(self, timeout: float | None) -> None:
        """Until something changes, or ``timeout``. (Not ``wait_for``: before Python 3.12 it
        can swallow a cancellation that arrives as the event fires.)"""
        waiter = asyncio.ensure_future(self.changed.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()

    def _tokens(self, batch: Batch) -> int:
        return sum(self.work.tokens[index] for index in batch.indices)

    def _next_batch(self) -> Batch:
        """The next request from the queue: within the model's limits, the size the sizer and
        the token budget allow, and no more than an even share of what is left per free slot
        (near the end of a job the free slots share what is left, rather than one slot taking
        a little at a time)."""
        free = max(1, self.pacer.allowed_in_flight() - self.pacer.in_flight)
        caps = [self.max_inputs, self.sizer.inputs_cap(), math.ceil(len(self.queue) / free)]
        max_inputs = min(c for c in caps if c is not None)
        if self.pacer.probing and len(self.queue) > max_inputs:
            max_inputs = min(max_inputs, PROBE_INPUTS)
        token_caps = [self.model.limits.max_tokens_per_request, self.pacer.request_token_budget()]
        known = [c for c in token_caps if c is not None]
        max_tokens = min(known) if known else None
        indices = planning.take_batch(
            self.queue, self.work.tokens, max_inputs=max_inputs, max_tokens=max_tokens
        )
        return Batch(indices)

    def _launch(self, batch: Batch, tokens: int) -> None:
        now = self.clock()
        ticket = self.pacer.start(tokens, now)
        self.report.requests += 1
        if batch.sent:
            self.report.retries += 1
        batch.sent = True
        task = asyncio.get_running_loop().create_task(self._send(batch, ticket))
        self.tasks.add(task)
        task.add_done_callback(self._finished_task)

    def _finished_task(self, task: asyncio.Task[None]) -> None:
        """A request's task ended. One that raised (a bug after the answer, in storing it) stops
        the job with that error: never an exception nobody retrieves, and never a job that
        goes on with rows missing."""
        self.tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and self.stopped_by is None:
            if isinstance(error, ProviderInterrupted):
                self.interrupted = error
                self.stopped_by = PermanentError(str(error))
            elif isinstance(error, (ProviderError, ConfigurationError)):
                self.stopped_by = error
            else:
                self.stopped_by = PermanentError(
                    f"storing the answer of {self.model!r} failed: {type(error).__name__}: {error}"
                )
                self.stopped_by.__cause__ = error
        self.changed.set()

    async def _send(self, batch: Batch, ticket: pacing.Ticket) -> None:
        texts = [self.work.texts[index] for index in batch.indices]
        tokens, sent_at = ticket.tokens, ticket.sent_at
        context = pacing._current.set((self.pacer, ticket))
        outcome: ProviderError | ConfigurationError | None = None
        try:
            timeout = self.sizer.timeout_for(tokens) if self.native_async else None
            try:
                raw = await asyncio.wait_for(self.model.aembed_batch(texts, self.role), timeout)
            except asyncio.TimeoutError:
                waited = "in time" if timeout is None else f"within {timeout:.0f} s"
                raise RequestTimeoutError(
                    f"no answer {waited} for a request of {len(texts)} inputs"
                ) from None
            vectors = checked(raw, len(texts), self.provider_dimension, self.model)
        except (ProviderError, ConfigurationError) as error:
            outcome = error
        except Exception as error:  # a provider bug must not hang or lose the job
            outcome = PermanentError(f"{self.model!r} raised {type(error).__name__}: {error}")
            outcome.__cause__ = error
        except (KeyboardInterrupt, SystemExit) as error:
            raise ProviderInterrupted(error) from error
        finally:
            pacing._current.reset(context)
            self.pacer.finish()
        now = self.clock()
        if outcome is None:
            slowdown = self.sizer.on_answer(
                latency=now - sent_at,
                inputs=len(texts),
                tokens=tokens,
                sent_at=sent_at,
                now=now,
            )
            self.pacer.on_success(ticket, now, slowdown=slowdown)
            if self.pacer.server:
                self.sizer.limits_announced()
            if self.provider_dimension is None:
                self.provider_dimension = int(vectors.shape[1])
            self.on_done(batch.indices, vectors)
            self.finished.update(batch.indices)  # only once stored: a failed store fails them
            return
        await self._handle(batch, outcome, ticket, now)

    async def _handle(
        self,
        batch: Batch,
        error: ProviderError | ConfigurationError,
        ticket: pacing.Ticket,
        now: float,
    ) -> None:
        size = len(batch.indices)
        if isinstance(error, RateLimitError):
            self.report.rate_limited += 1
            self.pacer.on_rate_limited(ticket, error.retry_after, now, self.settings.max_retry_wait)
        elif isinstance(error, RequestTimeoutError):
            self.pacer.on_timeout(ticket, now)
            self.sizer.on_timeout(inputs=size, now=now)
        elif isinstance(error, BatchTooLargeError):
            self.sizer.on_too_large(size)
        attempt = policy.Attempt(
            indices=batch.indices,
            tokens=[self.work.tokens[i] for i in batch.indices],
            shrinks=[self.work.shrinks.get(i, 0) for i in batch.indices],
            errors=batch.errors,
            rate_limits=batch.rate_limits,
            server_said=ticket.asked.header if ticket.asked else None,
        )
        decision = policy.decide(
            error,
            attempt,
            now=now,
            last_success=max(self.started, self.pacer.last_success),
            settings=self.settings,
            jitter=random.random(),
        )
        if isinstance(decision, policy.Retry):
            if isinstance(error, RateLimitError):
                batch.rate_limits += 1
            else:
                batch.errors += 1
            await asyncio.sleep(decision.delay)
            self._ready(batch)
        elif isinstance(decision, policy.Split):
            self.report.splits += 1
            half = math.ceil(size / 2)
            errors = batch.errors + (not isinstance(error, BatchTooLargeError))
            for part in (batch.indices[:half], batch.indices[half:]):
                self._ready(Batch(part, errors=errors, rate_limits=batch.rate_limits))
        elif isinstance(decision, policy.Shorten):
            self._shorten(batch.indices[decision.position], decision.tokens)
            self._ready(Batch(batch.indices, batch.errors, batch.rate_limits))
        elif isinstance(decision, policy.FailItems):
            positions = decision.positions or range(size)
            self._fail([batch.indices[p] for p in positions], decision.error)
            rest = [i for p, i in enumerate(batch.indices) if p not in positions]
            if rest:
                self._ready(Batch(rest, batch.errors, batch.rate_limits))
        else:
            self.stopped_by = decision.error
            if isinstance(decision.error, ProviderError):
                self._fail(batch.indices, decision.error)
            self.changed.set()

    def _ready(self, batch: Batch) -> None:
        self.ready.append(batch)
        self.changed.set()

    def _shorten(self, index: int, tokens: int) -> None:
        side: Any = "start" if self.settings.truncate == "start" else "end"
        self.work.texts[index] = self.model.truncate_text(self.work.texts[index], tokens, side)
        self.work.tokens[index] = tokens
        self.work.shrinks[index] = self.work.shrinks.get(index, 0) + 1
        self.report.items[index].truncated = True
        self.report.items[index].tokens = tokens

    def _fail(self, indices: list[int], error: ProviderError) -> None:
        for index in indices:
            self.failures[index] = error
            self.report.items[index].failed = True
