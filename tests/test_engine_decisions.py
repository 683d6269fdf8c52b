"""The engine's decisions as pure functions, with a fake clock: planning, policy, pacing and
request sizing. Nothing here sleeps or opens a socket."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from embedify.engine import planning, policy
from embedify.engine.headers import parse_duration, retry_after_from_headers
from embedify.engine.pacing import Pacer, Ticket, TokenBucket
from embedify.engine.sizing import INITIAL_INPUTS, RequestSizer
from embedify.errors import (
    AuthenticationError,
    BatchTooLargeError,
    ConfigurationError,
    ConnectionFailedError,
    InputTooLongError,
    InvalidInputError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    TransientError,
)

SETTINGS = policy.Settings(
    max_retries=3, rate_limit_timeout=600.0, truncate="end", max_tokens_per_input=100
)


def attempt(size: int = 4, errors: int = 0, rate_limits: int = 0) -> policy.Attempt:
    return policy.Attempt(
        indices=list(range(10, 10 + size)),
        tokens=[50] * size,
        shrinks=[0] * size,
        errors=errors,
        rate_limits=rate_limits,
    )


def decide(error: Exception, at: policy.Attempt | None = None, **kw: object) -> policy.Decision:
    arguments: dict[str, object] = {
        "now": 1000.0,
        "last_success": 990.0,
        "settings": SETTINGS,
        "jitter": 0.5,
    }
    arguments.update(kw)
    return policy.decide(error, at or attempt(), **arguments)  # type: ignore[arg-type]


# -- planning -----------------------------------------------------------------------------------


def test_requests_respect_every_limit_and_take_every_input_once() -> None:
    tokens = [((i * 37) % 300) + 1 for i in range(5000)]
    queue = deque(sorted(range(5000), key=lambda i: -tokens[i]))
    plan = []
    while queue:
        plan.append(planning.take_batch(queue, tokens, max_inputs=2048, max_tokens=30_000))
    assert sorted(i for batch in plan for i in batch) == list(range(5000))
    assert all(len(batch) <= 2048 for batch in plan)
    assert all(sum(tokens[i] for i in batch) <= 30_000 for batch in plan)


def test_one_long_input_goes_alone_and_does_not_raise_the_cap_for_the_others() -> None:
    queue = deque([0, 1, 2, 3])
    tokens = [150, 50, 50, 50]
    plan = [planning.take_batch(queue, tokens, max_inputs=None, max_tokens=100) for _ in range(3)]
    assert plan == [[0], [1, 2], [3]]


def test_take_batch_stops_at_the_token_budget() -> None:
    queue = deque([0, 1, 2, 3])
    assert planning.take_batch(queue, [40, 30, 30, 20], max_inputs=10, max_tokens=70) == [0, 1]
    assert list(queue) == [2, 3]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([b"raw"], "input 0 is bytes; decode it first"),
        (["ok", "bad \ud800 text"], "input 1 holds a lone surrogate"),
        ({"a", "b"}, "set, which has no defined order"),
        ({"k": "v"}, "dict, which has no defined order"),
        (["fine", 3], "input 1 is a int, not a str"),
        (["fine", "  "], "input 1 is empty"),
        (b"raw", "texts is bytes"),
    ],
)
def test_bad_inputs_name_their_index_and_the_fix(texts: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        planning.validated_texts(texts)


def test_truncate_error_refuses_before_sending() -> None:
    with pytest.raises(InputTooLongError, match="input 7 has 120 tokens") as caught:
        planning.over_long_inputs([3, 7], [10, 120], limit=100, truncate="error", model_name="m")
    assert caught.value.index == 7
    cuts = planning.over_long_inputs([3, 7], [10, 120], limit=100, truncate="start", model_name="m")
    assert cuts == {7: planning.Cut(100, "start")}


# -- policy ---------------------------------------------------------------------------------------


def test_retry_after_is_honoured_with_an_upper_bound() -> None:
    for jitter in (0.0, 0.999):
        decision = decide(RateLimitError("429", retry_after=2.0), jitter=jitter)
        assert isinstance(decision, policy.Retry)
        assert 2.0 <= decision.delay <= 2.2


def test_rate_limits_are_not_errors_while_the_job_progresses() -> None:
    many = attempt(rate_limits=50, errors=SETTINGS.max_retries)
    assert isinstance(decide(RateLimitError("429"), many), policy.Retry)


def test_rate_limits_stop_the_job_after_the_timeout_without_progress() -> None:
    decision = decide(RateLimitError("429", retry_after=5.0), now=1000.0, last_success=396.0)
    assert isinstance(decision, policy.StopJob)
    assert "rate_limit_timeout=600" in str(decision.error)
    # a Retry-After longer than the timeout is refused at once, without a retry
    assert isinstance(decide(RateLimitError("429", retry_after=900.0)), policy.StopJob)


def test_transient_errors_are_retried_up_to_max_retries() -> None:
    error = TransientError("503")
    for errors in range(SETTINGS.max_retries):
        decision = decide(error, attempt(errors=errors))
        assert isinstance(decision, policy.Retry)
        assert decision.delay <= policy.backoff_delay(errors + 1, None, 1.0)
    assert isinstance(decide(error, attempt(errors=SETTINGS.max_retries)), policy.FailItems)


def test_backoff_grows_and_is_capped() -> None:
    delays = [policy.backoff_delay(n, None, 1.0) for n in range(1, 12)]
    assert delays == sorted(delays) and delays[0] == 0.5 and delays[-1] == policy.MAX_BACKOFF


def test_a_long_retry_after_on_a_5xx_fails_without_retrying() -> None:
    decision = decide(TransientError("503", retry_after=policy.DEFAULT_MAX_RETRY_WAIT + 1))
    assert isinstance(decision, policy.FailItems)


def test_a_timed_out_batch_is_split_not_resent() -> None:
    assert isinstance(decide(RequestTimeoutError("slow"), attempt(size=8)), policy.Split)
    assert isinstance(decide(RequestTimeoutError("slow"), attempt(size=1)), policy.Retry)


def test_name_resolution_is_retried_once_then_stops_naming_the_host() -> None:
    error = ConnectionFailedError("dns", host="api.exmaple.com", name_resolution=True)
    assert isinstance(decide(error, attempt(errors=0)), policy.Retry)
    decision = decide(error, attempt(errors=1))
    assert isinstance(decision, policy.StopJob)
    assert "api.exmaple.com" in str(decision.error)
    refused = ConnectionFailedError("refused", host="127.0.0.1")
    assert isinstance(decide(refused, attempt(errors=1)), policy.Retry)


@pytest.mark.parametrize(
    "error",
    [AuthenticationError("401"), QuotaExceededError("quota"), ConfigurationError("no key")],
)
def test_job_stopping_errors_stop_the_job(error: Exception) -> None:
    assert isinstance(decide(error), policy.StopJob)


def test_other_permanent_errors_fail_only_their_batch() -> None:
    assert isinstance(decide(InvalidRequestError("400")), policy.FailItems)


def test_too_large_batches_split_until_one_input() -> None:
    assert isinstance(decide(BatchTooLargeError("413"), attempt(size=2)), policy.Split)
    assert isinstance(decide(BatchTooLargeError("413"), attempt(size=1)), policy.FailItems)


def test_over_long_input_is_shortened_then_fails_when_truncate_is_error() -> None:
    error = InputTooLongError("too long", index=1, tokens=200)
    decision = decide(error)
    assert decision == policy.Shorten(1, 23)  # 50 * 100 / 200 * 0.95
    strict = policy.Settings(3, 600.0, "error", 100)
    failed = decide(error, settings=strict)
    assert isinstance(failed, policy.FailItems) and failed.positions == (1,)
    assert failed.error.index == 11  # type: ignore[attr-defined]  # the caller's index
    assert isinstance(decide(InputTooLongError("which?")), policy.Split)


# -- pacing ---------------------------------------------------------------------------------------


def pacer(**kw: object) -> Pacer:
    arguments: dict[str, object] = {"start_in_flight": 16, "max_in_flight": 256, "now": 0.0}
    arguments.update(kw)
    return Pacer(**arguments)  # type: ignore[arg-type]


def test_token_bucket_refills_continuously() -> None:
    bucket = TokenBucket.per_minute(600, now=0.0)  # 10 per second
    bucket.spend(600, 0.0)
    assert bucket.delay_for(50, 0.0) == pytest.approx(5.0)
    assert bucket.delay_for(50, 5.0) == 0.0
    assert bucket.delay_for(10_000, 60.0) == 0.0  # more than it holds waits for a full bucket


def test_client_budget_spaces_requests() -> None:
    p = pacer(requests_per_minute=60, tokens_per_minute=6000)
    now = 0.0
    starts = []
    for _ in range(65):
        now += p.delay_before(10, now)
        starts.append(now)
        p.start(10, now)
    assert starts[59] == 0.0  # a minute's budget may go at once
    gaps = [b - a for a, b in itertools.pairwise(starts[60:])]
    assert all(gap == pytest.approx(1.0) for gap in gaps)  # then one per second


def test_request_sizes_follow_the_token_budget() -> None:
    p = pacer(tokens_per_minute=60_000)
    assert p.request_token_budget() == 1000  # one second of refill
    assert pacer().request_token_budget() is None


def test_headers_teach_buckets_and_429s_are_avoided() -> None:
    p = pacer()
    headers = {
        "x-ratelimit-limit-requests": "3000",
        "x-ratelimit-limit-tokens": "60000",
        "x-ratelimit-remaining-requests": "2999",
        "x-ratelimit-remaining-tokens": "5000",
    }
    p.observe_headers(headers, now=0.0)
    assert p.server["tokens"].capacity == 60000 and p.server["tokens"].level == 5000
    assert p.delay_before(5000, 0.0) == 0.0
    assert p.delay_before(6000, 0.0) == pytest.approx(1.0)  # 1000 tokens/s refill
    assert p.request_token_budget() == 1000


def test_headers_discount_what_the_server_has_not_counted_yet() -> None:
    p = pacer()
    p.observe_headers({"x-ratelimit-limit-tokens": "60000"}, now=0.0)
    p.start(500, now=0.9)  # sent before the answered one: the server charged it already
    answered = p.start(100, now=1.0)
    p.start(4000, now=2.0)  # sent later: not counted yet
    p.finish()
    p.observe_headers({"x-ratelimit-remaining-tokens": "10000"}, now=2.0, answered=answered)
    assert p.server["tokens"].level == pytest.approx(10000 - 4000)


def test_token_estimates_are_scaled_by_what_the_server_charged() -> None:
    p = pacer()
    p.observe_headers({"x-ratelimit-limit-tokens": "60000"}, now=0.0)
    for _ in range(30):  # the server charges 600 for every 1,000 estimated
        ticket = p.start(1000, now=0.0)
        p.observe_usage(ticket, 600)
        p.finish()
    assert p.token_scale == pytest.approx(0.6, abs=0.01)
    assert p.request_token_budget() == pytest.approx(1000 / 0.6, abs=2)


def test_a_429_answer_pauses_for_its_retry_after() -> None:
    p = pacer()
    p.on_rate_limited(Ticket(0.0, 10), retry_after=3.0, now=1.0)
    assert p.delay_before(1, 1.0) == pytest.approx(3.0)
    assert p.delay_before(1, 4.0) == 0.0


def test_a_burst_of_429s_halves_concurrency_once() -> None:
    p = pacer()
    for _ in range(16):  # sixteen requests sent together, all answered 429
        p.on_rate_limited(Ticket(0.5, 10), retry_after=None, now=1.0)
    assert p.allowed_in_flight() == 8
    p.on_rate_limited(Ticket(1.5, 10), retry_after=None, now=2.0)  # sent after the cut
    assert p.allowed_in_flight() == 4


def test_a_few_429s_naming_retry_after_pause_without_cutting() -> None:
    p = pacer()
    for second in range(1, 5):  # one refusal in ten, Retry-After 0.2 s: pause, keep the slots
        for _ in range(9):
            p.on_success(Ticket(second - 0.5, 10), now=float(second))
        p.on_rate_limited(Ticket(second - 0.5, 10), retry_after=0.2, now=float(second))
        assert p.delay_before(1, second) == pytest.approx(0.2)
    assert p.concurrency > 16


def test_many_429s_naming_retry_after_cut_once_per_burst() -> None:
    p = pacer()
    for _ in range(4):
        p.on_rate_limited(Ticket(0.5, 10), retry_after=1.0, now=1.0)
    assert p.allowed_in_flight() == 16  # four of the latest answers: not yet many
    for _ in range(12):  # most of a wave refused: too many requests at once
        p.on_rate_limited(Ticket(0.5, 10), retry_after=1.0, now=1.0)
    assert p.allowed_in_flight() == 8


def test_429s_of_a_server_with_announced_limits_do_not_cut() -> None:
    p = pacer()
    p.observe_headers({"x-ratelimit-limit-requests": "600"}, now=0.0)
    for _ in range(10):
        p.on_rate_limited(Ticket(0.5, 10), retry_after=None, now=1.0)
    assert p.allowed_in_flight() == 16  # its buckets pace it


def test_concurrency_grows_back_additively_after_a_cut() -> None:
    p = pacer(start_in_flight=8, max_in_flight=64)
    p.on_rate_limited(Ticket(0.0, 10), retry_after=None, now=0.0)
    assert p.allowed_in_flight() == 4
    for _ in range(4):  # one round trip of answers: one more slot
        p.on_success(Ticket(1.0, 10), now=1.0)
    assert 4.8 < p.concurrency < 5.0
    for _ in range(40):
        p.on_success(Ticket(1.0, 10), now=1.0)
    assert 8 <= p.allowed_in_flight() < 16  # grew back, by about one per round trip


def test_slow_start_grows_per_round_trip_until_the_ceiling() -> None:
    p = pacer(start_in_flight=16, max_in_flight=300)
    for _ in range(16):  # answers as fast as the server's best: no queueing at all
        p.on_success(Ticket(0.0, 10), now=0.2)
    assert p.allowed_in_flight() == 64
    for _ in range(64):  # up to twice as slow: some queueing, growth slows down
        p.on_success(Ticket(0.0, 10), now=0.4, slowdown=1.5)
    assert p.allowed_in_flight() == 128
    for _ in range(200):
        p.on_success(Ticket(0.0, 10), now=0.6)
    assert p.allowed_in_flight() == 300


def test_queueing_answers_hold_then_cut_concurrency_once_per_burst() -> None:
    p = pacer(start_in_flight=16, max_in_flight=256)
    p.on_success(Ticket(0.0, 10), now=0.2, slowdown=3.0)  # queued a little: stop growing
    assert p.concurrency == 16 and not p.slow_start
    for _ in range(10):  # a wave sent together, answered very slowly: the server queues them
        p.on_success(Ticket(0.1, 10), now=0.9, slowdown=6.0)
    assert p.allowed_in_flight() == 8
    p.on_success(Ticket(1.0, 10), now=1.2)
    assert p.concurrency == pytest.approx(8 + 1 / 8)


def test_retry_after_from_headers() -> None:
    assert retry_after_from_headers({"retry-after-ms": "250"}) == 0.25
    assert retry_after_from_headers({"Retry-After": "7"}) == 7.0
    assert retry_after_from_headers({"x-ratelimit-reset-requests": "6m0s"}) == 360.0
    # with the limit announced, the engine paces from its bucket: a reset is not a delay
    paced = {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-reset-tokens": "59s"}
    assert retry_after_from_headers(paced) is None
    assert parse_duration("1m30s") == 90.0 and parse_duration("soon") is None


# -- sizing ---------------------------------------------------------------------------------------


def test_requests_start_modest_and_grow_while_answers_are_fast() -> None:
    sizer = RequestSizer(adaptive=True, timeout=60.0)
    assert sizer.inputs_cap() == INITIAL_INPUTS
    sizer.on_answer(latency=0.2, inputs=32, tokens=640, sent_at=0.0, now=0.2)
    assert sizer.inputs_cap() == 64
    sizer.on_answer(latency=0.2, inputs=32, tokens=640, sent_at=0.0, now=0.2)
    assert sizer.inputs_cap() == 64  # an answer to a request sent before the change: no change
    sizer.on_answer(latency=0.3, inputs=64, tokens=1280, sent_at=0.3, now=0.6)
    assert sizer.inputs_cap() == 128


def test_slow_answers_and_timeouts_shrink_requests() -> None:
    sizer = RequestSizer(adaptive=True, timeout=60.0)
    sizer.on_answer(latency=25.0, inputs=32, tokens=640, sent_at=0.0, now=25.0)
    assert sizer.inputs_cap() == 16
    sizer.on_timeout(inputs=16, now=30.0)
    assert sizer.inputs_cap() == 8


def test_deadlines_scale_with_request_size() -> None:
    sizer = RequestSizer(adaptive=True, timeout=120.0)
    assert sizer.timeout_for(1000) == 120.0  # nothing learned: the user's timeout
    sizer.on_answer(latency=2.0, inputs=32, tokens=1000, sent_at=0.0, now=2.0)
    small, large = sizer.timeout_for(1000), sizer.timeout_for(20_000)
    assert small is not None and large is not None
    assert small == 10.0 and 10.0 < large <= 120.0 and large > small


def test_queueing_is_detected_from_latency() -> None:
    sizer = RequestSizer(adaptive=True, timeout=None)
    assert sizer.on_answer(latency=0.2, inputs=32, tokens=640, sent_at=0.0, now=0.2) == 1.0
    slowdown = sizer.on_answer(latency=0.9, inputs=32, tokens=640, sent_at=0.0, now=1.0)
    assert slowdown == pytest.approx(4.5)


def test_413s_cap_inputs_per_request() -> None:
    sizer = RequestSizer(adaptive=False, timeout=None)
    assert sizer.inputs_cap() is None
    sizer.on_too_large(40)
    assert sizer.inputs_cap() == 20


def test_token_estimates_are_calibrated_from_how_remaining_falls() -> None:
    p = pacer()
    limit = {"x-ratelimit-limit-tokens": "60000"}  # 1,000 tokens per second
    remaining, now = 1000.0, 0.0
    for _ in range(40):  # each request: 1,000 estimated, 500 charged, sent every 0.5 s
        ticket = p.start(1000, now)
        remaining += 1000 * 0.5 - 500 if now else -500
        p.observe_headers({**limit, "x-ratelimit-remaining-tokens": str(remaining)}, now, ticket)
        p.finish()
        p.on_success(ticket, now)
        now += 0.5
    assert p.token_scale == pytest.approx(0.5, abs=0.02)
    # a request refused with a 429 is not charged, so it must not count as estimated tokens
    refused = p.start(1000, now)
    p.on_rate_limited(refused, retry_after=None, now=now)
    answered = p.start(1000, now + 0.1)  # 0.6 s after the last answered one: 600 refilled
    p.observe_headers(
        {**limit, "x-ratelimit-remaining-tokens": str(remaining + 600 - 500)}, now + 0.1, answered
    )
    p.on_success(answered, now + 0.1)
    assert p.token_scale == pytest.approx(0.5, abs=0.02)


def test_a_remote_model_sends_its_first_request_alone() -> None:
    p = pacer(probe_first=True)
    assert p.allowed_in_flight() == 1
    refused = p.start(10, now=0.0)
    p.finish()
    p.on_rate_limited(refused, retry_after=None, now=0.1)
    assert p.allowed_in_flight() == 1  # refused: still nothing known, still one at a time
    answered = p.start(10, now=1.1)
    p.finish()
    p.on_success(answered, now=1.3)
    assert p.allowed_in_flight() == 8  # the bare 429 halved the 16 it will start from


def test_a_first_answer_announcing_limits_opens_every_slot() -> None:
    hosted = pacer(probe_first=True)
    probe = hosted.start(10, now=0.0)
    hosted.observe_headers({"x-ratelimit-limit-requests": "3000"}, 0.2, probe)
    hosted.finish()
    hosted.on_success(probe, now=0.2)
    assert hosted.allowed_in_flight() == 256  # limits are per minute: the buckets pace
    self_hosted = pacer(probe_first=True)  # no headers: capacity unknown, slow start
    probe = self_hosted.start(10, now=0.0)
    self_hosted.finish()
    self_hosted.on_success(probe, now=0.2)
    assert self_hosted.allowed_in_flight() == 19


def test_announced_limits_end_the_ramp_of_request_sizes() -> None:
    sizer = RequestSizer(adaptive=True, timeout=None)
    sizer.limits_announced()
    assert sizer.inputs_cap() is None  # each request takes its share of what is left
    sizer.on_answer(latency=30.0, inputs=500, tokens=90_000, sent_at=0.0, now=30.0)
    assert sizer.inputs_cap() is None  # big requests of a hosted API are slow, not too big
    sizer.on_timeout(inputs=500, now=31.0)
    assert sizer.inputs_cap() == 250


def test_a_refused_request_gives_its_cost_back() -> None:
    p = pacer()
    p.observe_headers({"x-ratelimit-limit-tokens": "60000"}, now=0.0)
    p.start(50_000, now=0.0)
    refused = p.start(9_000, now=0.0)
    p.on_rate_limited(refused, retry_after=None, now=0.0)
    assert p.server["tokens"].level == pytest.approx(10_000)


def test_reported_usage_wins_over_what_headers_suggest() -> None:
    p = pacer()
    limit = {"x-ratelimit-limit-tokens": "60000"}
    first = p.start(1000, now=0.0)
    p.observe_usage(first, 500)  # exact: the server charged half the estimate
    p.observe_headers({**limit, "x-ratelimit-remaining-tokens": "5000"}, 0.0, first)
    p.on_success(first, now=0.0)
    second = p.start(1000, now=2.0)  # remaining fell by 1000 more than refilled: another
    p.observe_usage(second, 500)  # process spends on the key too, which usage is not about
    p.observe_headers({**limit, "x-ratelimit-remaining-tokens": "5000"}, 2.0, second)
    p.on_success(second, now=2.0)
    assert p.token_scale == pytest.approx(0.5)
