"""Rate limits: how many requests may be in flight, and when the next one may start.

One :class:`Pacer` per model, shared by all its jobs. It keeps

- token buckets for requests and tokens, learned from the server's ``x-ratelimit-limit-*`` and
  ``x-ratelimit-remaining-*`` headers (OpenAI, Azure, and servers copying them), so a request
  is never sent into a bucket that cannot hold it. Each answer's ``remaining`` sets the level,
  less what this process sent that the server had not counted yet. Token estimates are
  scaled by what the server charged: exactly when the provider reports it (``observe_usage``),
  else from how ``remaining`` fell between answers. A cautious estimate (bytes / 3) would
  otherwise pace a job at half the rate the key allows;
- token buckets for the client-side ``requests_per_minute`` / ``tokens_per_minute`` budgets,
  which is how several jobs or processes share one key without seeing 429s;
- a pause until the time a 429's ``Retry-After`` names;
- no wait the server set (a pause, its buckets) longer than the model's ``max_retry_wait``:
  such a wait is forgotten, not waited for, so one hostile or broken answer never holds back
  later requests (a server that means it answers 429, and the policy refuses that wait);
- the number of requests allowed in flight: for a remote model, the first request goes alone
  (its answer tells the limits and the latency). When that answer announces rate limits, the
  number jumps to the ceiling: the buckets pace the requests. Otherwise (a self-hosted server,
  whose capacity is unknown) AIMD: it grows four-fold per round trip while answers show no
  queueing and two-fold while they show a little (slow start), then by one per round trip.
  Either way it halves once per burst of bare 429s, timeouts or answers slowed by queueing
  (answers to requests sent before the last cut do not cut again).

Nothing here sleeps or reads the time itself: every method takes ``now``, so decisions are
tested with a fake clock.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from embedify.engine.headers import (
    AskedWait,
    announced_limit,
    asked_wait,
    header_number,
    parse_duration,
)
from embedify.engine.policy import DEFAULT_MAX_RETRY_WAIT, readable_wait

#: Near a tokens-per-minute limit, a request holds at most this many seconds of refill, so
#: requests fit the budget as it refills instead of waiting for a bucket to fill up.
REFILL_HORIZON = 1.0
#: Ceiling of requests in flight for natively async providers when the user sets none: limits
#: of hosted APIs are requests and tokens per minute, which the buckets enforce, not connections.
ADAPTIVE_MAX_IN_FLIGHT = 128
#: Answers this many times slower than the server's pace for their size stop the growth of
#: requests in flight, and cut it.
QUEUEING_HOLD = 2.0
#: Answers within this factor of the server's pace show no queueing at all: during slow start
#: the requests in flight then grow four-fold per round trip, not two.
UNQUEUED = 1.25
QUEUEING_CUT = 4.0
#: A 429 that names its Retry-After cuts the requests in flight when at least REFUSALS_TO_CUT
#: of the latest REFUSAL_MEMORY answers were 429s.
REFUSALS_TO_CUT, REFUSAL_MEMORY = 5, 20
#: Own spending is remembered this long, to reconcile it with the server's ``remaining``.
_SPEND_MEMORY = 120.0
#: Token estimates are calibrated over answers at least this far apart (requests sent close
#: together may be charged in another order than they were sent); the first measurement, which
#: replaces a mere guess, over a shorter stretch.
_CALIBRATION_WINDOW = 1.0
_FIRST_CALIBRATION_WINDOW = 0.25

#: A pause learned from headers is cut to a day, the most ``max_retry_wait`` allows, so that no
#: clock arithmetic meets an infinity.
_LONGEST_PAUSE = 86_400.0


@dataclass
class TokenBucket:
    """A continuously refilling bucket: ``rate`` per second up to ``capacity``."""

    capacity: float
    rate: float
    level: float
    updated: float

    @classmethod
    def per_minute(cls, limit: float, now: float, level: float | None = None) -> TokenBucket:
        return cls(limit, limit / 60.0, limit if level is None else min(level, limit), now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def delay_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits (an amount over the capacity waits for a full bucket)."""
        self._refill(now)
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def spend(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= min(amount, self.capacity)

    def set_level(self, level: float, now: float) -> None:
        """Adopt the level the server reports (it sees every process sharing the key), owing
        at most a full bucket: whatever count a server sends, a request waits for no more
        than two refills of it."""
        self._refill(now)
        self.level = max(-self.capacity, min(self.capacity, level))

    def resize(self, limit: float, now: float) -> None:
        self._refill(now)
        self.capacity, self.rate = limit, limit / 60.0
        self.level = min(self.level, limit)


@dataclass(eq=False)
class Ticket:
    """One request, from the moment the pacer let it start."""

    sent_at: float
    tokens: int
    charged: bool = True  # False once the server refused it (429)
    remaining_tokens: float | None = None  # the server's remaining tokens in its answer
    asked: AskedWait | None = None  # the wait its answer's headers ask for


class Pacer:
    """When requests of one model may start, and how many may be in flight."""

    def __init__(
        self,
        *,
        start_in_flight: int,
        max_in_flight: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        probe_first: bool = False,
        now: float,
    ) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self.concurrency = float(min(max(1, start_in_flight), self.max_in_flight))
        self.slow_start = self.concurrency < self.max_in_flight
        self.in_flight = 0
        self.probing = probe_first  # until the first success, one request at a time
        self.paused_until = 0.0
        self.last_cut = -math.inf
        self.last_success = now
        self.client: dict[str, TokenBucket] = {}
        if requests_per_minute:
            self.client["requests"] = TokenBucket.per_minute(requests_per_minute, now)
        if tokens_per_minute:
            self.client["tokens"] = TokenBucket.per_minute(tokens_per_minute, now)
        self.server: dict[str, TokenBucket] = {}
        self.token_scale = 1.0  # tokens the server charges per token estimated here
        self._scale_measured = False
        self._usage_reported = False  # exact charges known: no need to infer them
        self._recent: deque[Ticket] = deque()
        self._refusals: deque[bool] = deque(maxlen=REFUSAL_MEMORY)  # latest answers: 429 or not
        self._last_answer: Ticket | None = None  # where the calibration window starts

    # -- admission -------------------------------------------------------------------------

    def allowed_in_flight(self) -> int:
        return 1 if self.probing else max(1, int(self.concurrency))

    def _buckets(self, kind: str) -> list[TokenBucket]:
        return [b for b in (self.client.get(kind), self.server.get(kind)) if b is not None]

    def delay_before(
        self, tokens: int, now: float, max_wait: float = DEFAULT_MAX_RETRY_WAIT
    ) -> float:
        """Seconds until a request of ``tokens`` (estimated) may start (0: now). A wait the
        server set that is longer than ``max_wait`` is forgotten, not waited for: the pause,
        or the server's buckets (learned again from its next answer)."""
        if self.paused_until - now > max_wait:
            self.paused_until = now
        server = [bucket.delay_for(1, now) for bucket in self._server_requests()]
        server += [
            bucket.delay_for(self.charged_tokens(tokens), now) for bucket in self._server_tokens()
        ]
        if max(server, default=0.0) > max_wait:
            self.server.clear()
            server = []
        client = [self.client["requests"].delay_for(1, now)] if "requests" in self.client else []
        if "tokens" in self.client:
            client.append(self.client["tokens"].delay_for(tokens, now))
        return max(0.0, self.paused_until - now, *server, *client)

    def _server_requests(self) -> list[TokenBucket]:
        return [self.server["requests"]] if "requests" in self.server else []

    def _server_tokens(self) -> list[TokenBucket]:
        return [self.server["tokens"]] if "tokens" in self.server else []

    def charged_tokens(self, tokens: float) -> float:
        """``tokens`` (our estimate) in the server's own tokens, as its limits count them."""
        return tokens * self.token_scale

    def request_token_budget(self) -> int | None:
        """Most tokens (estimated) one request should hold: what a token bucket holds and
        refills in ``REFILL_HORIZON`` seconds (``None``: no token limit known)."""
        budgets = [
            min(bucket.capacity, bucket.rate * REFILL_HORIZON) / self.token_scale
            for bucket in self._server_tokens()
        ]
        if "tokens" in self.client:
            client = self.client["tokens"]
            budgets.append(min(client.capacity, client.rate * REFILL_HORIZON))
        return max(1, int(min(budgets))) if budgets else None

    def start(self, tokens: int, now: float) -> Ticket:
        """A request of ``tokens`` (estimated) is being sent now."""
        for bucket in self._buckets("requests"):
            bucket.spend(1, now)
        for bucket in self._server_tokens():
            bucket.spend(self.charged_tokens(tokens), now)
        if "tokens" in self.client:
            self.client["tokens"].spend(tokens, now)
        self.in_flight += 1
        ticket = Ticket(now, tokens)
        self._recent.append(ticket)
        while self._recent and self._recent[0].sent_at < now - _SPEND_MEMORY:
            self._recent.popleft()
        return ticket

    def finish(self) -> None:
        """A request ended (answered, failed or cancelled)."""
        self.in_flight -= 1

    # -- what answers teach ----------------------------------------------------------------

    def on_success(self, ticket: Ticket, now: float, *, slowdown: float = 1.0) -> None:
        """An answer came back, ``slowdown`` times slower than the server's pace for its size.
        Twice as slow: requests wait in a queue there, so their number stops growing; four
        times: more in flight only wait longer (and time out), so it is cut like after a 429.
        (Network jitter alone seldom slows an answer that much.)"""
        self._calibrate(ticket)
        self._refusals.append(False)
        if self.probing and self.server:
            # The first answer announced rate limits: a hosted API, whose limits are requests
            # and tokens per minute (the buckets keep to them), not connections.
            self.concurrency = float(self.max_in_flight)
        self.probing = False
        self.last_success = max(self.last_success, now)
        if slowdown > QUEUEING_CUT:
            self._cut(ticket.sent_at, now)
        if slowdown > QUEUEING_HOLD:
            self.slow_start = False
            return
        step = (3.0 if slowdown < UNQUEUED else 1.0) if self.slow_start else 1.0 / self.concurrency
        self.concurrency = min(float(self.max_in_flight), self.concurrency + step)

    def on_rate_limited(
        self,
        ticket: Ticket,
        retry_after: float | None,
        now: float,
        max_wait: float = DEFAULT_MAX_RETRY_WAIT,
    ) -> None:
        """A 429: pause new requests for ``retry_after``, unless it is longer than ``max_wait``
        (the policy refuses such a wait: it must not hold back later calls) or no number of
        seconds (NaN, negative). The server did not charge the refused request: its cost goes
        back to the buckets. A 429 that says nothing else (no ``Retry-After``, no announced
        limits) cuts the number in flight. A server that announced
        its limits is paced by its buckets; one that says when to come back is paced by that,
        and the number in flight is cut only when many recent answers were 429s (too many
        requests at once), not for a few (a server refusing one in ten whatever the load
        would otherwise shrink the job to a few requests in flight)."""
        ticket.charged = False
        for bucket in self._buckets("requests"):
            bucket.level = min(bucket.capacity, bucket.level + 1)
        for bucket in self._server_tokens():
            bucket.level = min(bucket.capacity, bucket.level + self.charged_tokens(ticket.tokens))
        if "tokens" in self.client:
            client = self.client["tokens"]
            client.level = min(client.capacity, client.level + ticket.tokens)
        self._calibrate(ticket)
        wait = readable_wait(retry_after)
        if wait is not None and wait <= max_wait:
            self.paused_until = max(self.paused_until, now + wait)
        self._refusals.append(True)
        many = self._refusals.count(True) >= REFUSALS_TO_CUT
        if not self.server and (wait is None or many):
            self._cut(ticket.sent_at, now)

    def on_timeout(self, ticket: Ticket, now: float) -> None:
        self._cut(ticket.sent_at, now)

    def _cut(self, sent_at: float, now: float) -> None:
        """Halve the requests in flight once per burst: a request sent before the last cut
        reports congestion that cut already answered."""
        self.slow_start = False
        if sent_at < self.last_cut:
            return
        self.concurrency = max(1.0, self.concurrency / 2)
        self.last_cut = now

    def _not_counted(self, answered: Ticket | None) -> tuple[float, float]:
        """(requests, tokens) the server's ``remaining`` in the answer to ``answered`` does not
        count yet: the requests sent after it (servers charge a request when it arrives, so
        the ones sent before were charged before it)."""
        if answered is None:
            return 0.0, 0.0
        later = [ticket.tokens for ticket in self._recent if ticket.sent_at > answered.sent_at]
        return float(len(later)), self.charged_tokens(sum(later))

    def observe_usage(self, answered: Ticket, tokens: int) -> None:
        """The server says it charged ``tokens`` for ``answered``."""
        if answered.tokens > 0 and tokens > 0:
            self._usage_reported = True
            self._learn_scale(tokens / answered.tokens)

    def _learn_scale(self, ratio: float) -> None:
        """The first measurement replaces the guess; then a moving average, so one odd
        measurement does not swing it."""
        ratio = min(4.0, max(0.25, ratio))
        if not self._scale_measured:
            self.token_scale, self._scale_measured = ratio, True
        else:
            self.token_scale = 0.7 * self.token_scale + 0.3 * ratio

    def _calibrate(self, answered: Ticket) -> None:
        """Learn the scale from how the server's remaining tokens fell between the answers to
        two requests: what it charged for the requests sent in between (less what it refilled)
        against what was estimated for them. Skipped while the bucket may have been full (a
        full bucket does not show what it would have refilled). Only when the provider does not
        report usage: another process sharing the key makes this over-estimate the charges."""
        last = self._last_answer
        bucket = self.server.get("tokens")
        if answered.remaining_tokens is None or bucket is None or self._usage_reported:
            return
        if last is None or last.remaining_tokens is None:
            self._last_answer = answered
            return
        elapsed = answered.sent_at - last.sent_at
        if elapsed < (_CALIBRATION_WINDOW if self._scale_measured else _FIRST_CALIBRATION_WINDOW):
            return
        self._last_answer = answered
        if last.remaining_tokens + bucket.rate * elapsed >= 0.9 * bucket.capacity:
            return
        charged = last.remaining_tokens - answered.remaining_tokens + bucket.rate * elapsed
        estimated = sum(
            ticket.tokens
            for ticket in self._recent
            if ticket.charged and last.sent_at < ticket.sent_at <= answered.sent_at
        )
        if charged > 0 and estimated > 0:
            self._learn_scale(charged / estimated)

    def observe_headers(
        self, headers: Mapping[str, str], now: float, answered: Ticket | None = None
    ) -> None:
        """Learn limits from ``x-ratelimit-*`` headers (of any answer, 429s included), and what
        wait they ask for (kept on ``answered``, to quote if it is refused)."""
        lowered = {key.lower(): value for key, value in headers.items()}
        if answered is not None:
            answered.asked = asked_wait(lowered)
        not_requests, not_tokens = self._not_counted(answered)
        for kind, spent in (("requests", not_requests), ("tokens", not_tokens)):
            limit = announced_limit(lowered, kind)
            remaining = header_number(lowered.get(f"x-ratelimit-remaining-{kind}"))
            bucket = self.server.get(kind)
            if limit is not None:
                if bucket is None:
                    bucket = self.server[kind] = TokenBucket.per_minute(limit, now)
                elif bucket.capacity != limit:
                    bucket.resize(limit, now)
            if remaining is None:
                continue
            if bucket is not None:
                bucket.set_level(remaining - spent, now)
                if kind == "tokens" and answered is not None:
                    answered.remaining_tokens = remaining
            elif remaining <= 0:  # no limit announced: wait for the announced reset
                reset = parse_duration(lowered.get(f"x-ratelimit-reset-{kind}", ""))
                if reset is not None:
                    self.paused_until = max(self.paused_until, now + min(reset, _LONGEST_PAUSE))


_current: contextvars.ContextVar[tuple[Pacer, Ticket] | None] = contextvars.ContextVar(
    "embedify_pacer", default=None
)


def observe_rate_limit_headers(headers: Mapping[str, str]) -> None:
    """Tell the engine about the ``x-ratelimit-*`` headers of a response.

    Providers call this with the headers of every response, errors (429s) included; outside a
    job it does nothing.
    """
    current = _current.get()
    if current is not None:
        pacer, ticket = current
        pacer.observe_headers(headers, time.monotonic(), ticket)


def observe_usage(tokens: int) -> None:
    """Tell the engine how many tokens the provider charged for the current request (OpenAI's
    ``usage.prompt_tokens``), so rate limits are paced in the server's tokens, not estimates.
    Optional; outside a job it does nothing."""
    current = _current.get()
    if current is not None:
        pacer, ticket = current
        pacer.observe_usage(ticket, tokens)
