"""Adaptive throttling shared by all jobs of one model.

Concurrency follows AIMD: every 429 halves the number of requests allowed in flight and pauses
new requests until the provider's ``Retry-After``; every success adds back a fraction of a slot,
so the rate recovers gradually. Rate-limit headers that say the budget is spent pause new
requests until the reset, and an optional client-side requests/tokens-per-minute budget keeps a
job under a known quota without ever seeing a 429.
"""

from __future__ import annotations

import contextvars
import email.utils
import re
import time
from collections import deque
from collections.abc import Mapping

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
            parsed = email.utils.parsedate_to_datetime(raw) if raw else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    resets = [
        parse_duration(lowered[key])
        for key in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if key in lowered
    ]
    known = [reset for reset in resets if reset is not None]
    return max(known) if known else None


class Throttle:
    """Concurrency limit, pause and minute budgets for one model, across its jobs."""

    def __init__(
        self,
        max_concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.limit = float(max_concurrency)
        self.paused_until = 0.0
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._window: deque[tuple[float, int]] = deque()
        self._window_tokens = 0

    def allowed_in_flight(self) -> int:
        return max(1, int(self.limit))

    def on_success(self) -> None:
        self.limit = min(float(self.max_concurrency), self.limit + 1.0 / max(self.limit, 1.0))

    def on_rate_limited(self, delay: float) -> None:
        self.limit = max(1.0, self.limit / 2)
        self.pause(delay)

    def pause(self, delay: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + delay)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Pause until the reset when the provider says the remaining budget is zero."""
        lowered = {key.lower(): value for key, value in headers.items()}
        for kind in ("requests", "tokens"):
            remaining = lowered.get(f"x-ratelimit-remaining-{kind}")
            reset = lowered.get(f"x-ratelimit-reset-{kind}")
            if remaining is None or reset is None:
                continue
            try:
                spent = float(remaining) <= 0
            except ValueError:
                continue
            seconds = parse_duration(reset)
            if spent and seconds is not None:
                self.pause(seconds)

    def delay_before(self, tokens: int) -> float:
        """Seconds to wait before a request of ``tokens`` may start (0 when it may go now)."""
        now = time.monotonic()
        delay = self.paused_until - now
        while self._window and self._window[0][0] <= now - 60.0:
            self._window_tokens -= self._window.popleft()[1]
        if self.requests_per_minute and len(self._window) + 1 > self.requests_per_minute:
            delay = max(delay, self._window[0][0] + 60.0 - now)
        if self.tokens_per_minute and self._window:
            excess = self._window_tokens + tokens - self.tokens_per_minute
            for started, spent in self._window:
                if excess <= 0:
                    break
                excess -= spent
                delay = max(delay, started + 60.0 - now)
        return max(0.0, delay)

    def spend(self, tokens: int) -> None:
        self._window.append((time.monotonic(), tokens))
        self._window_tokens += tokens


_current: contextvars.ContextVar[Throttle | None] = contextvars.ContextVar(
    "embedify_throttle", default=None
)


def observe_rate_limit_headers(headers: Mapping[str, str]) -> None:
    """Tell the engine about a successful response's ``x-ratelimit-*`` headers.

    Providers call this with the headers of each response; outside a job it does nothing.
    """
    throttle = _current.get()
    if throttle is not None:
        throttle.observe_headers(headers)
