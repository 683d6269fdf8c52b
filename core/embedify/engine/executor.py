"""Runs a job's requests: forms each request when a slot and the rate limits allow, sends it,
and carries out what the policy decides about failures.

All requests of a job are tasks the executor owns: when one is decided to stop the job (bad
key, exhausted quota, wrong configuration), the others, queued, waiting to retry or in flight,
are cancelled at once, so no request is sent after the job has failed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from embedify.engine import pacing, policy, steps
from embedify.engine.steps import PROBE_INPUTS as PROBE_INPUTS
from embedify.engine.steps import Batch
from embedify.engine.vectors import checked
from embedify.errors import (
    ConfigurationError,
    PermanentError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
)

if TYPE_CHECKING:
    from embedify.engine.pacing import Pacer
    from embedify.engine.sizing import RequestSizer
    from embedify.protocol import ProviderModel, Role, Vectors
    from embedify.report import Report


class ProviderInterrupted(Exception):
    """A provider call raised ``KeyboardInterrupt`` or ``SystemExit`` (Ctrl-C inside a model's
    worker thread). Raised inside the engine's event loop, it would stop the loop's thread and
    leave the caller waiting forever; the job stops and ``run_sync`` raises the original."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__} in a provider call")
        self.original = original


@dataclass
class Work:
    """What to send for each input: the text (cut when needed) and its tokens."""

    texts: dict[int, str]
    tokens: dict[int, int]
    shrinks: dict[int, int] = field(default_factory=dict)


class Executor:
    """The requests of one job that could not be served from the cache. Its choices are the
    pure functions of ``steps``; the executor carries them out with ``clock``, ``sleep`` and
    ``rng`` (uniform in [0, 1), the retries' jitter), which tests replace."""

    def __init__(
        self,
        model: ProviderModel,
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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
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
        self.bounds = steps.RequestBounds(
            max_inputs, model.capabilities.limits.max_tokens_per_request, cap
        )
        self.provider_dimension = provider_dimension
        self.on_done = on_done
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.native_async = model.info.native_async
        self.failures: dict[int, ProviderError] = {}
        self.finished: set[int] = set()
        self.stopped_by: ProviderError | ConfigurationError | None = None
        self.interrupted: ProviderInterrupted | None = None

    async def run(self, order: list[int]) -> dict[int, ProviderError]:
        """Embed the inputs ``order`` names (longest first); return the failed ones."""
        self.started = self.clock()
        self.schedule = steps.Schedule(deque(order), self.work.tokens)
        self.tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()
        try:
            while True:
                self.changed.clear()
                now = self.clock()
                step = steps.next_step(
                    self.schedule,
                    self.pacer,
                    self.sizer,
                    self.bounds,
                    running=len(self.tasks),
                    stopped=self.stopped_by is not None,
                    now=now,
                )
                if isinstance(step, steps.Done):
                    break
                if isinstance(step, steps.Wait):
                    await self._wait(step.seconds)
                    continue
                self._launch(step.batch, step.tokens, now)
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
        """Until something changes, or ``timeout`` seconds of ``sleep``. (Not ``wait_for``:
        before Python 3.12 it can swallow a cancellation that arrives as the event fires.)"""
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.changed.wait())}
        if timeout is not None:
            waiters.add(asyncio.ensure_future(self.sleep(timeout)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _launch(self, batch: Batch, tokens: int, now: float) -> None:
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
        tokens = ticket.tokens
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
            steps.after_answer(self.pacer, self.sizer, ticket, inputs=len(texts), now=now)
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
        if isinstance(error, RateLimitError):
            self.report.rate_limited += 1
        followup = steps.after_failure(
            batch,
            error,
            ticket,
            pacer=self.pacer,
            sizer=self.sizer,
            shrinks=self.work.shrinks,
            tokens=self.work.tokens,
            settings=self.settings,
            started=self.started,
            now=now,
            jitter=self.rng(),
        )
        if isinstance(followup.decision, policy.Split):
            self.report.splits += 1
        if followup.shorten is not None:
            self._shorten(*followup.shorten)
        if followup.error is not None:
            self._fail(list(followup.failed), followup.error)
        if followup.stop is not None:
            self.stopped_by = followup.stop
            self.changed.set()
            return
        if followup.delay > 0:
            await self.sleep(followup.delay)
        for again in followup.again:
            self._ready(again)

    def _ready(self, batch: Batch) -> None:
        self.schedule.ready.append(batch)
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
