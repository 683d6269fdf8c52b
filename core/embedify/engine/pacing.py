"""Rate limits: how many requests may be in flight, and when the next one may start.

One :class:`Pacer` per model, shared by all its jobs. It keeps

- token buckets for requests and tokens, learned from the server's ``x-ratelimit-limit-*`` and
  ``x-ratelimit-remaining-*`` headers (OpenAI, Azure, and servers copying them), so a request
  is never sent into a bucket that cannot hold it;
- token buckets for the client-side ``requests_per_minute`` / ``tokens_per_minute`` budgets,
  which is how several jobs or processes share one key without seeing 429s;
- a pause until the time a 429's ``Retry-After`` names;
- the number of requests allowed in flight, AIMD: it doubles per round trip while answers stay
  fast (slow start), then grows by one per round trip, and halves once per burst of 429s or
  timeouts (answers to requests sent before the last cut do not cut again).

Nothing here sleeps or reads the time itself: every method takes ``now``, so decisions are
tested with a fake clock.
"""

from __future__ import annotations

import contextvars
import email.utils
import math
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

#: Near a tokens-per-minute limit, a request holds at most this many seconds of refill, so
#: requests fit the budget as it refills instead of waiting for a bucket to fill up.
REFILL_HORIZON = 1.0
#: Ceiling of requests in flight for natively async providers when the user sets none: limits
#: of hosted APIs are requests and tokens per minute, which the buckets enforce, not connections.
ADAPTIVE_MAX_IN_FLIGHT = 256
#: Own spending is remembered this long, to reconcile it with the server's ``remaining``.
_SPEND_MEMORY = 120.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str) -> float | None:
    """Seconds in a rate-limit reset value: ``"1s"``, ``"6m0s"``, ``"12ms"`` or a plain number."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """The delay a response asks for: ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP
    date), or the latest ``x-ratelimit-reset-*``. ``None`` when the response names none."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    if "retry-after" in lowered:
        raw = lowered["retry-after"]
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(raw) if raw else None
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    resets = [
        parse_duration(lowered[key])
        for key in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if key in lowered
    ]
    known = [reset for reset in resets if reset is not None]
    return max(known) if known else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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

    def lower_to(self, level: float, now: float) -> None:
        """Adopt a lower level the server reports (another process shares the key, or the
        server counts tokens differently); a higher one is not trusted."""
        self._refill(now)
        self.level = min(self.level, level)

    def resize(self, limit: float, now: float) -> None:
        self._refill(now)
        self.capacity, self.rate = limit, limit / 60.0
        self.level = min(self.level, limit)


class Pacer:
    """When requests of one model may start, and how many may be in flight."""

    def __init__(
        self,
        *,
        start_in_flight: int,
        max_in_flight: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        now: float,
    ) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self.concurrency = float(min(max(1, start_in_flight), self.max_in_flight))
        self.slow_start = self.concurrency < self.max_in_flight
        self.in_flight = 0
        self.paused_until = 0.0
        self.last_cut = -math.inf
        self.last_success = now
        self.client: dict[str, TokenBucket] = {}
        if requests_per_minute:
            self.client["requests"] = TokenBucket.per_minute(requests_per_minute, now)
        if tokens_per_minute:
            self.client["tokens"] = TokenBucket.per_minute(tokens_per_minute, now)
        self.server: dict[str, TokenBucket] = {}
        self._spent: deque[tuple[float, int]] = deque()

    # -- admission -------------------------------------------------------------------------

    def allowed_in_flight(self) -> int:
        return max(1, int(self.concurrency))

    def _buckets(self, kind: str) -> list[TokenBucket]:
        return [b for b in (self.client.get(kind), self.server.get(kind)) if b is not None]

    def delay_before(self, tokens: int, now: float) -> float:
        """Seconds until a request of ``tokens`` may start (0: now)."""
        delays = [self.paused_until - now]
        delays += [bucket.delay_for(1, now) for bucket in self._buckets("requests")]
        delays += [bucket.delay_for(tokens, now) for bucket in self._buckets("tokens")]
        return max(0.0, *delays)

    def request_token_budget(self) -> int | None:
        """Most tokens one request should hold: what a token bucket holds and refills in
        ``REFILL_HORIZON`` seconds (``None``: no token limit known)."""
        budgets = [
            min(bucket.capacity, bucket.rate * REFILL_HORIZON) for bucket in self._buckets("tokens")
        ]
        return max(1, int(min(budgets))) if budgets else None

    def start(self, tokens: int, now: float) -> None:
        """A request of ``tokens`` is being sent now."""
        for bucket in self._buckets("requests"):
            bucket.spend(1, now)
        for bucket in self._buckets("tokens"):
            bucket.spend(tokens, now)
        self.in_flight += 1
        self._spent.append((now, tokens))
        while self._spent and self._spent[0][0] < now - _SPEND_MEMORY:
            self._spent.popleft()

    def finish(self) -> None:
        self.in_flight -= 1

    # -- what answers teach ----------------------------------------------------------------

    def on_success(self, sent_at: float, now: float, *, inflated: bool = False) -> None:
        """An answer came back. ``inflated``: slower than the server's usual pace for its size,
        a sign that it queues requests, so the number in flight stops growing."""
        self.last_success = max(self.last_success, now)
        if inflated:
            self.slow_start = False
            return
        step = 1.0 if self.slow_start else 1.0 / self.concurrency
        self.concurrency = min(float(self.max_in_flight), self.concurrency + step)

    def on_rate_limited(self, sent_at: float, retry_after: float | None, now: float) -> None:
        """A 429: pause new requests for ``retry_after`` and cut the number in flight."""
        if retry_after is not None:
            self.paused_until = max(self.paused_until, now + retry_after)
        self._cut(sent_at, now)

    def on_timeout(self, sent_at: float, now: float) -> None:
        self._cut(sent_at, now)

    def _cut(self, sent_at: float, now: float) -> None:
        """Halve the requests in flight once per burst: a request sent before the last cut
        reports congestion that cut already answered."""
        self.slow_start = False
        if sent_at < self.last_cut:
            return
        self.concurrency = max(1.0, self.concurrency / 2)
        self.last_cut = now

    def _spent_since(self, sent_at: float | None) -> tuple[int, int]:
        """(requests, tokens) this process sent after ``sent_at``: the server's ``remaining``
        in the answer to a request sent then does not count them yet."""
        if sent_at is None:
            return 0, 0
        later = [tokens for started, tokens in self._spent if started > sent_at]
        return len(later), sum(later)

    def observe_headers(
        self, headers: Mapping[str, str], now: float, sent_at: float | None = None
    ) -> None:
        """Learn limits from ``x-ratelimit-*`` headers (of any answer, 429s included)."""
        lowered = {key.lower(): value for key, value in headers.items()}
        spent_requests, spent_tokens = self._spent_since(sent_at)
        for kind, spent in (("requests", spent_requests), ("tokens", spent_tokens)):
            limit = _number(lowered.get(f"x-ratelimit-limit-{kind}"))
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{kind}"))
            bucket = self.server.get(kind)
            if limit is not None and limit > 0:
                if bucket is None:
                    bucket = self.server[kind] = TokenBucket.per_minute(limit, now)
                elif bucket.capacity != limit:
                    bucket.resize(limit, now)
            if remaining is None:
                continue
            if bucket is not None:
                bucket.lower_to(remaining - spent, now)
            elif remaining <= 0:  # no limit announced: wait for the announced reset
                reset = parse_duration(lowered.get(f"x-ratelimit-reset-{kind}", ""))
                if reset is not None:
                    self.paused_until = max(self.paused_until, now + reset)


_current: contextvars.ContextVar[tuple[Pacer, float] | None] = contextvars.ContextVar(
    "embedify_pacer", default=None
)


def observe_rate_limit_headers(headers: Mapping[str, str]) -> None:
    """Tell the engine about the ``x-ratelimit-*`` headers of a response.

    Providers call this with the headers of every response, errors (429s) included; outside a
    job it does nothing.
    """
    current = _current.get()
    if current is not None:
        pacer, sent_at = current
        pacer.observe_headers(headers, time.monotonic(), sent_at)
