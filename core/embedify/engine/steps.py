"""The executor's choices, without I/O: which request to send next and when, and what follows
a request's answer or failure.

The executor (``executor.py``) carries them out: it owns the tasks, the sleeps and the provider
calls. Everything here takes the time as ``now`` and the jitter as a number, so tests drive it
with a fake clock and a seeded generator. The state is the job's :class:`Schedule` and the
model's Pacer and RequestSizer; a step updates them and returns what to do.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from embedify.engine import planning, policy
from embedify.engine.pacing import Pacer, Ticket
from embedify.engine.sizing import RequestSizer
from embedify.errors import (
    BatchTooLargeError,
    ConfigurationError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
)

#: How often a job blocked by other jobs' requests of the same model looks again.
POLL = 0.05
#: Inputs in the lone first request to a remote model when the job needs more than one: its
#: answer tells the limits and the latency, and the rest of the job waits for it.
PROBE_INPUTS = 4


@dataclass
class Batch:
    """One request's inputs (caller indices) and what happened to it so far."""

    indices: list[int]
    errors: int = 0
    rate_limits: int = 0
    sent: bool = False


@dataclass(frozen=True)
class RequestBounds:
    """What bounds each request of a job, fixed for the job: inputs per request (the model's,
    or the caller's ``batch_size``; ``None``: none), the model's tokens per request, and the
    longest wait a server may set (``max_retry_wait``). Not the model's
    :class:`~embedify.protocol.Limits`: this is what one job derived from them."""

    max_inputs: int | None
    max_tokens: int | None
    max_wait: float


@dataclass
class Schedule:
    """What a job has still to send: caller indices not yet in any request (longest first)
    and formed batches due now (retries, halves), which go first."""

    queue: deque[int]
    tokens: Mapping[int, int]
    ready: deque[Batch] = field(default_factory=deque)

    def tokens_of(self, batch: Batch) -> int:
        return sum(self.tokens[index] for index in batch.indices)


@dataclass(frozen=True)
class Send:
    """Send ``batch`` now; ``tokens`` is its estimated size."""

    batch: Batch
    tokens: int


@dataclass(frozen=True)
class Wait:
    """Nothing to send now: look again when one of the job's requests ends or a retry is due,
    or after ``seconds`` (``None``: only then)."""

    seconds: float | None


@dataclass(frozen=True)
class Done:
    """Nothing left to send or wait for, or the job was stopped."""


Step = Send | Wait | Done


def next_step(
    schedule: Schedule,
    pacer: Pacer,
    sizer: RequestSizer,
    bounds: RequestBounds,
    *,
    running: int,
    stopped: bool,
    now: float,
) -> Step:
    """The executor's next move. ``running`` counts the job's requests in flight or waiting to
    retry. A slot held by another job of the same model frees no event here, so a job blocked
    by slots polls (:data:`POLL`); a batch the rate limits hold back stays first in line."""
    if stopped or not (schedule.queue or schedule.ready or running):
        return Done()
    if not (schedule.queue or schedule.ready):
        return Wait(None)
    if pacer.in_flight >= pacer.allowed_in_flight():
        return Wait(POLL)
    batch = (
        schedule.ready.popleft() if schedule.ready else next_batch(schedule, pacer, sizer, bounds)
    )
    tokens = schedule.tokens_of(batch)
    delay = pacer.delay_before(tokens, now, bounds.max_wait)
    if delay > 0:
        schedule.ready.appendleft(batch)
        return Wait(delay)
    return Send(batch, tokens)


def next_batch(
    schedule: Schedule, pacer: Pacer, sizer: RequestSizer, bounds: RequestBounds
) -> Batch:
    """The next request from the queue: within the model's limits, the size the sizer and
    the token budget allow, and no more than an even share of what is left per free slot
    (near the end of a job the free slots share what is left, rather than one slot taking
    a little at a time). While the pacer probes, a job that needs more than one request sends
    :data:`PROBE_INPUTS` inputs first."""
    queue = schedule.queue
    free = max(1, pacer.allowed_in_flight() - pacer.in_flight)
    caps = [bounds.max_inputs, sizer.inputs_cap(), math.ceil(len(queue) / free)]
    max_inputs = min(c for c in caps if c is not None)
    if pacer.probing and len(queue) > max_inputs:
        max_inputs = min(max_inputs, PROBE_INPUTS)
    known = [c for c in (bounds.max_tokens, pacer.request_token_budget()) if c is not None]
    max_tokens = min(known) if known else None
    indices = planning.take_batch(
        queue, schedule.tokens, max_inputs=max_inputs, max_tokens=max_tokens
    )
    return Batch(indices)


def after_answer(
    pacer: Pacer, sizer: RequestSizer, ticket: Ticket, *, inputs: int, now: float
) -> None:
    """A request of ``inputs`` answered: the sizer and the pacer learn its latency; a server
    that announced its limits stops the sizer's growth from small."""
    slowdown = sizer.on_answer(
        latency=now - ticket.sent_at,
        inputs=inputs,
        tokens=ticket.tokens,
        sent_at=ticket.sent_at,
        now=now,
    )
    pacer.on_success(ticket, now, slowdown=slowdown)
    if pacer.server:
        sizer.limits_announced()


@dataclass(frozen=True)
class Followup:
    """What the executor does after a failed request, in this order: cut input ``shorten``
    (caller index, tokens); fail ``failed`` with ``error``; stop the job with ``stop`` (the
    other requests are cancelled); or, after ``delay`` seconds, send ``again``."""

    decision: policy.Decision
    again: tuple[Batch, ...] = ()
    delay: float = 0.0
    failed: tuple[int, ...] = ()
    error: ProviderError | None = None
    shorten: tuple[int, int] | None = None
    stop: ProviderError | ConfigurationError | None = None


def after_failure(
    batch: Batch,
    error: ProviderError | ConfigurationError,
    ticket: Ticket,
    *,
    pacer: Pacer,
    sizer: RequestSizer,
    shrinks: Mapping[int, int],
    tokens: Mapping[int, int],
    settings: policy.Settings,
    started: float,
    now: float,
    jitter: float,
) -> Followup:
    """A request failed with ``error``: the pacer and the sizer learn from it (a 429 pauses,
    a timeout cuts the requests in flight, a 413 caps the inputs), :func:`policy.decide`
    chooses, and the batch's counters move. ``jitter`` is uniform in [0, 1)."""
    size = len(batch.indices)
    if isinstance(error, RateLimitError):
        pacer.on_rate_limited(ticket, error.retry_after, now, settings.max_retry_wait)
    elif isinstance(error, RequestTimeoutError):
        pacer.on_timeout(ticket, now)
        sizer.on_timeout(inputs=size, now=now)
    elif isinstance(error, BatchTooLargeError):
        sizer.on_too_large(size)
    attempt = policy.Attempt(
        indices=batch.indices,
        tokens=[tokens[i] for i in batch.indices],
        shrinks=[shrinks.get(i, 0) for i in batch.indices],
        errors=batch.errors,
        rate_limits=batch.rate_limits,
        server_said=ticket.asked.header if ticket.asked else None,
    )
    decision = policy.decide(
        error,
        attempt,
        now=now,
        last_success=max(started, pacer.last_success),
        settings=settings,
        jitter=jitter,
    )
    if isinstance(decision, policy.Retry):
        if isinstance(error, RateLimitError):
            batch.rate_limits += 1
        else:
            batch.errors += 1
        return Followup(decision, again=(batch,), delay=decision.delay)
    if isinstance(decision, policy.Split):
        half = math.ceil(size / 2)
        errors = batch.errors + (not isinstance(error, BatchTooLargeError))
        halves = (batch.indices[:half], batch.indices[half:])
        return Followup(
            decision, again=tuple(Batch(part, errors, batch.rate_limits) for part in halves)
        )
    if isinstance(decision, policy.Shorten):
        again = Batch(batch.indices, batch.errors, batch.rate_limits)
        cut = (batch.indices[decision.position], decision.tokens)
        return Followup(decision, again=(again,), shorten=cut)
    if isinstance(decision, policy.FailItems):
        positions = decision.positions or range(size)
        failed = tuple(batch.indices[p] for p in positions)
        rest = [i for p, i in enumerate(batch.indices) if p not in positions]
        rest_batch = (Batch(rest, batch.errors, batch.rate_limits),) if rest else ()
        return Followup(decision, again=rest_batch, failed=failed, error=decision.error)
    stop = decision.error
    if isinstance(stop, ProviderError):
        return Followup(decision, failed=tuple(batch.indices), error=stop, stop=stop)
    return Followup(decision, stop=stop)
