"""The executor's choices (``engine.steps``) with a fake clock and a seeded generator, and the
executor carrying them out with that clock, a sleep that only moves it, and that generator.
Nothing here waits for real time."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
import pytest

from embedify.engine import policy, steps
from embedify.engine.executor import Executor, Work
from embedify.engine.pacing import Pacer, Ticket
from embedify.engine.sizing import RequestSizer
from embedify.errors import (
    AuthenticationError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
    TransientError,
)
from embedify.fake import FakeEmbeddingModel
from embedify.model import Role, Vectors
from embedify.report import ItemReport, Report

T = TypeVar("T")
SETTINGS = policy.Settings(
    max_retries=3, rate_limit_timeout=600.0, truncate="end", max_tokens_per_input=None
)
BOUNDS = steps.RequestBounds(max_inputs=32, max_tokens=None, max_wait=120.0)


def schedule(count: int, tokens: int = 10) -> steps.Schedule:
    return steps.Schedule(deque(range(count)), dict.fromkeys(range(count), tokens))


def pacer(*, probe: bool = False, slots: int = 4, **limits: float) -> Pacer:
    return Pacer(start_in_flight=slots, max_in_flight=slots, probe_first=probe, now=0.0, **limits)


def sizer() -> RequestSizer:
    return RequestSizer(adaptive=False, timeout=None)


def step(plan: steps.Schedule, pace: Pacer, *, now: float = 0.0, **kw: object) -> steps.Step:
    arguments: dict[str, object] = {"running": 0, "stopped": False, "now": now}
    arguments.update(kw)
    return steps.next_step(plan, pace, sizer(), BOUNDS, **arguments)  # type: ignore[arg-type]


def sent(move: steps.Step) -> list[int]:
    assert isinstance(move, steps.Send), move
    return move.batch.indices


def fail(batch: steps.Batch, error: ProviderError, *, jitter: float = 0.5) -> steps.Followup:
    tokens = dict.fromkeys(batch.indices, 10)
    return steps.after_failure(
        batch,
        error,
        Ticket(sent_at=0.0, tokens=10 * len(batch.indices)),
        pacer=pacer(),
        sizer=sizer(),
        shrinks={},
        tokens=tokens,
        settings=SETTINGS,
        started=0.0,
        now=1.0,
        jitter=jitter,
    )


# -- which request next, and when ---------------------------------------------------------------


def test_a_probing_job_sends_a_small_first_request_then_waits_for_its_answer() -> None:
    plan, pace = schedule(100), pacer(probe=True, slots=16)
    first = sent(step(plan, pace))
    assert len(first) == steps.PROBE_INPUTS
    ticket = pace.start(10 * len(first), 0.0)
    assert step(plan, pace, running=1) == steps.Wait(steps.POLL)
    pace.finish()
    steps.after_answer(pace, sizer(), ticket, inputs=len(first), now=0.2)
    # probing over: every slot takes an even share of what is left
    assert len(sent(step(plan, pace, now=0.2))) == 96 // 16


def test_a_job_that_fits_one_request_is_not_probed() -> None:
    plan = schedule(3)
    assert sent(step(plan, pacer(probe=True))) == [0, 1, 2]


def test_free_slots_share_what_is_left_and_the_limits_cap_each_request() -> None:
    plan, pace = schedule(10), pacer(slots=4)
    assert len(sent(step(plan, pace))) == 3  # ceil(10 / 4)
    capped = steps.next_step(
        schedule(10),
        pacer(slots=1),
        sizer(),
        steps.RequestBounds(max_inputs=4, max_tokens=25, max_wait=120.0),
        running=0,
        stopped=False,
        now=0.0,
    )
    assert sent(capped) == [0, 1]  # 25 tokens hold two inputs of 10


def test_a_job_whose_slots_are_all_taken_polls_and_keeps_its_queue() -> None:
    plan, pace = schedule(5), pacer(slots=1)
    pace.start(10, 0.0)  # another job's request holds the only slot
    assert step(plan, pace) == steps.Wait(steps.POLL)
    assert list(plan.queue) == [0, 1, 2, 3, 4]


def test_a_job_with_only_requests_in_flight_waits_for_them_and_ends_after() -> None:
    plan, pace = schedule(0), pacer()
    assert step(plan, pace, running=2) == steps.Wait(None)
    assert step(plan, pace, running=0) == steps.Done()


def test_a_rate_limit_holds_the_next_batch_first_in_line_until_it_allows() -> None:
    plan, pace = schedule(3), pacer(slots=3, requests_per_minute=1)
    first = step(plan, pace)
    assert isinstance(first, steps.Send)
    pace.start(first.tokens, 0.0)
    pace.finish()
    assert step(plan, pace, now=0.0) == steps.Wait(pytest.approx(60.0))
    assert plan.ready[0].indices == [1]
    assert step(plan, pace, now=45.0) == steps.Wait(pytest.approx(15.0))
    assert sent(step(plan, pace, now=60.0)) == [1]


def test_a_429_pauses_every_request_for_the_wait_the_server_asked() -> None:
    plan, pace = schedule(4), pacer(slots=2)
    ticket = pace.start(10, 0.0)
    pace.finish()
    followup = steps.after_failure(
        steps.Batch([9], sent=True),
        RateLimitError("slow down", retry_after=5.0),
        ticket,
        pacer=pace,
        sizer=sizer(),
        shrinks={},
        tokens={9: 10},
        settings=SETTINGS,
        started=0.0,
        now=1.0,
        jitter=0.0,
    )
    assert followup.delay == 5.0
    assert step(plan, pace, now=1.0) == steps.Wait(pytest.approx(5.0))
    assert sent(step(plan, pace, now=6.0))


def test_a_stopped_job_sends_nothing_more() -> None:
    plan = schedule(10)
    assert step(plan, pacer(), stopped=True, running=3) == steps.Done()
    assert len(plan.queue) == 10


# -- what follows a failure ---------------------------------------------------------------------


def test_retries_wait_a_jittered_backoff_within_its_bounds() -> None:
    rng = random.Random(23)
    for errors in range(3):
        bound = 0.5 * 2.0**errors
        for _ in range(50):
            batch = steps.Batch([1, 2], errors=errors, sent=True)
            followup = fail(batch, TransientError("503"), jitter=rng.random())
            assert isinstance(followup.decision, policy.Retry)
            assert bound / 2 <= followup.delay < bound
            assert followup.again == (batch,) and batch.errors == errors + 1
            assert batch.sent  # sent again, the report counts it as a retry


def test_a_retry_after_is_waited_plus_at_most_a_tenth() -> None:
    rng = random.Random(5)
    for _ in range(50):
        batch = steps.Batch([1], sent=True)
        followup = fail(batch, RateLimitError("429", retry_after=2.0), jitter=rng.random())
        assert 2.0 <= followup.delay <= 2.2
        assert batch.rate_limits == 1 and batch.errors == 0


def test_a_timed_out_batch_is_split_into_unsent_halves_carrying_its_errors() -> None:
    followup = fail(steps.Batch([1, 2, 3], errors=1, sent=True), RequestTimeoutError("slow"))
    assert isinstance(followup.decision, policy.Split)
    assert [half.indices for half in followup.again] == [[1, 2], [3]]
    assert all(half.errors == 2 and not half.sent for half in followup.again)
    assert followup.delay == 0


def test_an_error_every_request_would_hit_stops_the_job_and_fails_the_batch() -> None:
    error = AuthenticationError("bad key")
    followup = fail(steps.Batch([4, 5], sent=True), error)
    assert followup.stop is error
    assert followup.failed == (4, 5) and followup.error is error
    assert followup.again == ()


# -- the executor carries them out on a fake clock ---------------------------------------------


class FakeTime:
    """A clock that only the executor's sleeps move."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Scripted(FakeEmbeddingModel):
    """Raises the errors of ``script``, one per call, then answers, each after 10 ms of fake
    time; records each call's texts and the fake time it was sent at. ``None`` in the script:
    never answers."""

    def __init__(self, script: list[ProviderError | None], time: FakeTime) -> None:
        super().__init__("4")
        self.script = script
        self.time = time
        self.calls: list[tuple[float, list[str]]] = []
        self.cancelled = 0

    async def aembed_batch(self, texts: list[str], role: Role) -> Vectors:
        self.calls.append((self.time.now, texts))
        self.time.now += 0.01
        if not self.script:
            return np.ones((len(texts), 4), dtype=np.float32)
        what = self.script.pop(0)
        if what is not None:
            raise what
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("an event nobody sets fired")


async def guarded(job: Awaitable[T]) -> T:
    """A broken executor fails the test instead of hanging it (never reached when it works)."""
    return await asyncio.wait_for(job, timeout=10)


def executor(
    model: Scripted, count: int, *, slots: int = 1, seed: int = 0, **limits: float
) -> tuple[Executor, list[int]]:
    stored: list[int] = []
    work = Work(texts={i: f"text {i}" for i in range(count)}, tokens=dict.fromkeys(range(count), 2))
    run = Executor(
        model,
        "document",
        work,
        Report(items=[ItemReport() for _ in range(count)]),
        pacer=Pacer(start_in_flight=slots, max_in_flight=slots, now=0.0, **limits),
        sizer=RequestSizer(adaptive=False, timeout=None),
        settings=SETTINGS,
        provider_dimension=4,
        max_inputs=1,
        on_done=lambda indices, vectors: stored.extend(indices),
        clock=model.time.clock,
        sleep=model.time.sleep,
        rng=random.Random(seed).random,
    )
    return run, stored


async def test_the_executor_waits_out_the_rate_limit_on_its_clock() -> None:
    time = FakeTime()
    model = Scripted([], time)
    run, stored = executor(model, 3, requests_per_minute=1)
    assert await guarded(run.run([0, 1, 2])) == {}
    assert sorted(stored) == [0, 1, 2]
    assert [at for at, _ in model.calls] == pytest.approx([0.0, 60.0, 120.0], abs=0.1)


async def test_the_executor_retries_after_the_delay_its_generator_jittered() -> None:
    time = FakeTime()
    model = Scripted([TransientError("503")], time)
    run, stored = executor(model, 1, seed=11)
    assert await guarded(run.run([0])) == {}
    assert stored == [0]
    expected = policy.backoff_delay(1, None, random.Random(11).random())
    assert time.sleeps == [pytest.approx(expected)]
    assert model.calls[1][0] == pytest.approx(0.01 + expected)
    assert run.report.retries == 1


async def test_a_request_that_stops_the_job_cancels_the_others_in_flight() -> None:
    time = FakeTime()
    error = AuthenticationError("bad key")
    model = Scripted([None, None, error], time)  # two hang, the third is refused
    run, stored = executor(model, 6, slots=3)
    failures = await guarded(run.run(list(range(6))))
    assert model.cancelled == 2
    assert len(model.calls) == 3  # nothing sent after the refusal
    assert stored == [] and set(failures) == set(range(6))
    assert all(failure is error for failure in failures.values())
