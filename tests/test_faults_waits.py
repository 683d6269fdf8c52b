"""Fault injection: every wait a server can influence is capped by ``max_retry_wait``.

A ``Retry-After`` or rate-limit reset header that asks for more (huge numbers, ``inf``, a date
decades ahead) fails the call fast with a :class:`RateLimitError` quoting the header; nonsense
(NaN, negative, unreadable) counts as no wait named. What one hostile answer said never holds
back later calls. Decisions are tested as pure functions with a fake clock, then end to end over
loopback servers through the real clients.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedify
from embedify.engine import policy
from embedify.engine.headers import asked_wait, retry_after_from_headers
from embedify.engine.pacing import Pacer, Ticket
from embedify.errors import (
    ConfigurationError,
    EmbeddingJobError,
    RateLimitError,
    TransientError,
)
from embedify.testing import LoopbackServer, Request, Response
from embedify.testing.http_fake import EmbeddingServer, HttpFakeModel, vector_for

pytestmark = pytest.mark.faults

CAP = policy.DEFAULT_MAX_RETRY_WAIT
SETTINGS = policy.Settings(
    max_retries=3, rate_limit_timeout=600.0, truncate="end", max_tokens_per_input=100
)
#: Generous bound for "the call returns": a hang waits for the absurd time instead.
PROMPTLY = 20.0


def attempt(said: str | None = None, rate_limits: int = 0) -> policy.Attempt:
    return policy.Attempt(
        indices=[0, 1], tokens=[5, 5], shrinks=[0, 0], rate_limits=rate_limits, server_said=said
    )


def decide(error: TransientError, at: policy.Attempt | None = None, **kw: Any) -> policy.Decision:
    arguments: dict[str, Any] = {
        "now": 1000.0,
        "last_success": 999.0,
        "settings": SETTINGS,
        "jitter": 0.999,
    }
    arguments.update(kw)
    return policy.decide(error, at or attempt(), **arguments)


def pacer() -> Pacer:
    return Pacer(start_in_flight=4, max_in_flight=16, now=0.0)


# -- what the server asked for, and the policy's answer ------------------------------------------

ABSURD = [
    ({"Retry-After": "1e300"}, "retry-after: 1e300"),
    ({"Retry-After": "inf"}, "retry-after: inf"),
    ({"Retry-After": "99999999999"}, "retry-after: 99999999999"),
    ({"Retry-After": "Wed, 01 Jan 2070 00:00:00 GMT"}, "retry-after: Wed, 01 Jan 2070"),
    ({"retry-after-ms": "1e20"}, "retry-after-ms: 1e20"),
    (
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "999999h"},
        "x-ratelimit-reset-tokens: 999999h",
    ),
    (  # a bucket whose limit is 0 is no bucket: its reset is what the server asks for
        {
            "x-ratelimit-limit-requests": "0",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "inf",
        },
        "x-ratelimit-reset-requests: inf",
    ),
]


@pytest.mark.parametrize(("headers", "quoted"), ABSURD)
def test_an_absurd_wait_stops_at_once_quoting_the_header(
    headers: dict[str, str], quoted: str
) -> None:
    asked = asked_wait(headers)
    assert asked is not None and asked.seconds > CAP and quoted in asked.header
    decision = decide(
        RateLimitError("429: slow down", retry_after=asked.seconds), attempt(asked.header)
    )
    assert isinstance(decision, policy.StopJob)
    assert isinstance(decision.error, RateLimitError)
    message = str(decision.error)
    assert quoted in message and "max_retry_wait" in message and "429: slow down" in message
    assert "\n" not in message


def test_a_quoted_header_value_is_cut_short() -> None:
    asked = asked_wait({"Retry-After": "9" * 500})
    assert asked is not None and len(asked.header) < 80


def test_a_wait_named_outside_headers_is_refused_naming_the_provider_error() -> None:
    decision = decide(RateLimitError("429: retry after 99999999 seconds", retry_after=99999999.0))
    assert isinstance(decision, policy.StopJob)
    assert "99999999" in str(decision.error) and "max_retry_wait" in str(decision.error)


@pytest.mark.parametrize("asked", [math.nan, -1.0, -math.inf])
def test_a_nonsense_wait_counts_as_none_named(asked: float) -> None:
    decision = decide(RateLimitError("429", retry_after=asked))
    assert isinstance(decision, policy.Retry)
    assert 0.0 <= decision.delay <= policy.MAX_BACKOFF  # backoff, as for a bare 429


def test_the_jitter_never_takes_a_wait_past_the_cap() -> None:
    decision = decide(RateLimitError("429", retry_after=CAP - 1))
    assert isinstance(decision, policy.Retry) and CAP - 1 <= decision.delay <= CAP


def test_the_cap_is_the_settings_own() -> None:
    strict = replace(SETTINGS, max_retry_wait=10.0)
    assert isinstance(decide(RateLimitError("429", retry_after=9.0), settings=strict), policy.Retry)
    decision = decide(RateLimitError("429", retry_after=11.0), settings=strict)
    assert isinstance(decision, policy.StopJob) and "max_retry_wait=10" in str(decision.error)


@pytest.mark.parametrize("asked", [CAP + 1, math.inf])
def test_a_5xx_asking_past_the_cap_fails_its_inputs_quoting_the_header(asked: float) -> None:
    decision = decide(TransientError("503: down", retry_after=asked), attempt("retry-after: 1e9"))
    assert isinstance(decision, policy.FailItems)
    assert "retry-after: 1e9" in str(decision.error) and "max_retry_wait" in str(decision.error)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "-1"}, 0.0),
        ({"Retry-After": "Mon, 01 Jan 1900 00:00:00 GMT"}, 0.0),
        ({"Retry-After": "nan"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({"Retry-After": "soon"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "nan"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "-5"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, 360.0),
    ],
)
def test_headers_name_no_wait_or_a_real_one(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_from_headers(headers) == seconds


# -- the pacer is never poisoned -----------------------------------------------------------------


@pytest.mark.parametrize("asked", [1e300, math.inf, CAP + 1])
def test_a_refused_retry_after_does_not_pause_the_model(asked: float) -> None:
    p = pacer()
    p.on_rate_limited(Ticket(0.0, 10), retry_after=asked, now=1.0, max_wait=CAP)
    assert p.paused_until <= 1.0  # no pause taken
    assert p.delay_before(1, 1.0, max_wait=CAP) == 0.0


@pytest.mark.parametrize("reset", ["999999h", "inf", "9" * 400 + "h"])
def test_an_absurd_reset_on_a_good_answer_is_not_waited_for(reset: str) -> None:
    p = pacer()
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset}
    p.observe_headers(spent, now=0.0)
    assert math.isfinite(p.paused_until)  # no clock arithmetic meets an infinity
    assert p.delay_before(1, 0.0, max_wait=CAP) == 0.0
    # a reset within the cap is still honoured
    p.observe_headers({**spent, "x-ratelimit-reset-requests": "20s"}, now=1.0)
    assert p.delay_before(1, 1.0, max_wait=CAP) == pytest.approx(20.0)


def test_a_hostile_remaining_count_bounds_the_bucket_wait() -> None:
    p = pacer()
    hostile = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "-1e300"}
    p.observe_headers(hostile, now=0.0)
    assert 0.0 < p.delay_before(1, 0.0, max_wait=CAP) <= CAP
    # a cap below the bucket's wait: the server's buckets are forgotten, relearned from its next
    # answer, rather than waited for
    assert p.delay_before(1, 0.0, max_wait=10.0) == 0.0
    p.observe_headers({"x-ratelimit-limit-requests": "60"}, now=0.0)
    assert p.server["requests"].capacity == 60


@pytest.mark.parametrize("limit", ["5e-324", "1e-300", "0", "-60", "nan", "inf", "1e308"])
def test_an_absurd_limit_neither_crashes_nor_stalls(limit: str) -> None:
    p = pacer()
    headers = {
        "x-ratelimit-limit-requests": limit,
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-limit-tokens": limit,
        "x-ratelimit-remaining-tokens": "0",
    }
    p.observe_headers(headers, now=0.0)
    delay = p.delay_before(100, 0.0, max_wait=CAP)
    assert 0.0 <= delay <= CAP
    budget = p.request_token_budget()
    assert budget is None or budget >= 1


# -- properties: any headers at all --------------------------------------------------------------

KEYS = [
    "Retry-After",
    "retry-after",
    "retry-after-ms",
    *(
        f"x-ratelimit-{what}-{kind}"
        for what in ("limit", "remaining", "reset")
        for kind in ("requests", "tokens")
    ),
]
HOSTILE_VALUES = [
    "1e300", "inf", "-inf", "nan", "-1", "0", "99999999999", "1e308s", "6m0s", "999999h", "-5",
    "1e-320", "5e-324", "", " ", "9" * 400, "9" * 400 + "h", "Wed, 01 Jan 2070 00:00:00 GMT",
    "Mon, 01 Jan 1900 00:00:00 GMT",
]  # fmt: skip


def http_dates() -> st.SearchStrategy[str]:
    moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    return moments.map(lambda d: email.utils.format_datetime(d.replace(tzinfo=timezone.utc), True))


def durations() -> st.SearchStrategy[str]:
    part = st.tuples(st.floats(0, 1e12), st.sampled_from(["h", "m", "s", "ms"]))
    return st.lists(part, min_size=1, max_size=3).map(
        lambda parts: "".join(f"{number:f}".rstrip("0").rstrip(".") + u for number, u in parts)
    )


header_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.floats().map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    http_dates(),
    durations(),
    st.text(max_size=40),
)
header_sets = st.dictionaries(st.sampled_from(KEYS), header_values, max_size=len(KEYS))
caps = st.floats(min_value=0.001, max_value=86_400.0)


@settings(max_examples=400, deadline=None)
@given(headers=header_sets, cap=caps, jitter=st.floats(0.0, 0.999), rate_limits=st.integers(0, 40))
def test_any_headers_give_a_bounded_wait_or_a_fast_refusal(
    headers: dict[str, str], cap: float, jitter: float, rate_limits: int
) -> None:
    asked = retry_after_from_headers(headers)
    assert asked is None or asked >= 0.0  # never NaN, never negative
    said = asked_wait(headers)
    at = attempt(said.header if said else None, rate_limits)
    strict = replace(SETTINGS, max_retry_wait=cap)
    for error in (
        RateLimitError("429", retry_after=asked),
        TransientError("503", retry_after=asked),
    ):
        decision = decide(error, at, settings=strict, jitter=jitter)
        if isinstance(decision, policy.Retry):
            assert math.isfinite(decision.delay) and 0.0 <= decision.delay <= cap
        elif isinstance(error, RateLimitError):
            assert isinstance(decision, policy.StopJob)
            assert isinstance(decision.error, RateLimitError)
        else:
            assert isinstance(decision, policy.FailItems)


@settings(max_examples=400, deadline=None)
@given(
    answers=st.lists(header_sets, min_size=1, max_size=4),
    cap=caps,
    tokens=st.integers(1, 10**6),
    refused=st.booleans(),
)
def test_any_headers_never_make_the_pacer_wait_past_the_cap(
    answers: list[dict[str, str]], cap: float, tokens: int, refused: bool
) -> None:
    p = pacer()
    for now, headers in enumerate(answers):
        ticket = p.start(tokens, float(now))
        p.observe_headers(headers, float(now), ticket)
        p.finish()
        if refused:
            p.on_rate_limited(ticket, retry_after_from_headers(headers), float(now), max_wait=cap)
        else:
            p.on_success(ticket, float(now))
        delay = p.delay_before(tokens, float(now), max_wait=cap)
        assert math.isfinite(delay) and 0.0 <= delay <= cap
        assert math.isfinite(p.paused_until)


# -- the option ----------------------------------------------------------------------------------


def test_max_retry_wait_is_an_option_of_remote_models() -> None:
    assert embedify.RemoteOptions().max_retry_wait == policy.DEFAULT_MAX_RETRY_WAIT
    assert embedify.RemoteOptions(max_retry_wait=5).max_retry_wait == 5.0


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, 86_401])
def test_max_retry_wait_must_be_a_real_bound(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="max_retry_wait"):
        HttpFakeModel(base_url="http://127.0.0.1:9", max_retry_wait=bad)


# -- end to end, over loopback servers -----------------------------------------------------------


def refused_with(caught: pytest.ExceptionInfo[EmbeddingJobError], quoted: str) -> RateLimitError:
    errors = set(caught.value.failures.values())
    assert len(errors) == 1
    (error,) = errors
    assert isinstance(error, RateLimitError)
    assert quoted in str(error) and "max_retry_wait" in str(error)
    return error


def expected(texts: list[str]) -> np.ndarray[Any, Any]:
    return np.stack([vector_for("document", text) for text in texts])


HOSTILE_429 = [
    ({"Retry-After": "1e300"}, "retry-after: 1e300"),
    ({"Retry-After": "inf"}, "retry-after: inf"),
    ({"Retry-After": "Wed, 01 Jan 2070 00:00:00 GMT"}, "retry-after: Wed, 01 Jan 2070"),
    ({"retry-after-ms": "1e20"}, "retry-after-ms: 1e20"),
    (
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "999999h"},
        "x-ratelimit-reset-requests: 999999h",
    ),
]


@pytest.mark.parametrize(("headers", "quoted"), HOSTILE_429)
async def test_a_hostile_429_fails_fast_and_the_next_call_succeeds(
    headers: dict[str, str], quoted: str
) -> None:
    with LoopbackServer(EmbeddingServer()) as server:
        model = HttpFakeModel(base_url=server.url)
        server.fail_next(Response(429, {"error": {"message": "slow down"}}, headers=headers))
        with pytest.raises(EmbeddingJobError) as caught:
            await asyncio.wait_for(model.aembed(["one", "two"]), PROMPTLY)
        refused_with(caught, quoted)
        vectors = await asyncio.wait_for(model.aembed(["three"]), PROMPTLY)
    assert np.allclose(vectors, expected(["three"]), atol=1e-6)


async def test_an_absurd_reset_on_a_good_answer_does_not_hold_back_the_next_call() -> None:
    fake = EmbeddingServer()

    def handler(request: Request) -> Response:
        response = fake(request)
        if len(fake.statuses) == 1:
            response.headers["x-ratelimit-remaining-requests"] = "0"
            response.headers["x-ratelimit-reset-requests"] = "999999h"
        return response

    with LoopbackServer(handler) as server:
        model = HttpFakeModel(base_url=server.url)
        await asyncio.wait_for(model.aembed(["one"]), PROMPTLY)
        vectors = await asyncio.wait_for(model.aembed(["two"]), PROMPTLY)
    assert np.allclose(vectors, expected(["two"]), atol=1e-6)


async def test_the_option_sets_the_cap_end_to_end() -> None:
    with LoopbackServer(EmbeddingServer()) as server:
        model = HttpFakeModel(base_url=server.url, max_retry_wait=1)
        server.fail_next(
            Response(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "5"})
        )
        with pytest.raises(EmbeddingJobError) as caught:
            await asyncio.wait_for(model.aembed(["one"]), PROMPTLY)
        assert "max_retry_wait=1 " in str(refused_with(caught, "retry-after: 5"))


@pytest.mark.parametrize(
    ("headers", "message", "quoted"),
    [
        ({"retry-after": "1e300"}, "Rate limit reached", "retry-after: 1e300"),
        # Azure names the wait in the message only: the engine caps it all the same
        ({}, "Please retry after 99999999999 seconds.", "99999999999"),
    ],
)
async def test_the_openai_client_fails_fast_and_recovers(
    headers: dict[str, str], message: str, quoted: str
) -> None:
    testing = pytest.importorskip(
        "embedify_openai.testing", reason="the openai plugin is not installed"
    )
    with LoopbackServer(testing.FakeOpenAI()) as server:
        model = embedify.get_model(
            "openai:text-embedding-3-small", base_url=f"{server.url}/v1", api_key=testing.API_KEY
        )
        body = {"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}}
        server.fail_next(Response(429, body, headers=headers))
        with pytest.raises(EmbeddingJobError) as caught:
            await asyncio.wait_for(model.aembed(["one", "two"]), PROMPTLY)
        refused_with(caught, quoted)
        vectors = await asyncio.wait_for(model.aembed(["three"]), PROMPTLY)
    assert vectors.shape == (1, 1536)
