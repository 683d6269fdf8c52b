"""How big the next request may be, and how long to wait for its answer, from latency.

A server whose limits are unknown (self-hosted behind ``base_url``) is not sent the largest
request its API allows: requests start modest, double while answers come back fast, halve on
slow answers, and a request that times out is split rather than sent again unchanged (the
server may still be computing the abandoned one). The engine's deadline for a request scales
with its size, from the fastest answers seen. Pure: every method takes the times it needs.
"""

from __future__ import annotations

import math

from embedify.engine.pacing import QUEUEING_HOLD

#: Inputs in the first requests to a server whose speed is unknown.
INITIAL_INPUTS = 32
#: Answers at least this fast let requests grow (per-request cost dominates).
FAST_ANSWER = 2.0
#: Answers slower than this make requests shrink.
SLOW_ANSWER = 10.0
#: The engine's deadline: this many times the predicted latency, and at least MIN_TIMEOUT.
TIMEOUT_FACTOR = 4.0
MIN_TIMEOUT = 10.0


class RequestSizer:
    """Request size and deadline for one model, learned from its answers."""

    def __init__(self, *, adaptive: bool, timeout: float | None) -> None:
        self.adaptive = adaptive
        self.timeout = timeout
        self.max_inputs: float = INITIAL_INPUTS if adaptive else math.inf
        self.too_large_above: int | None = None  # learned from 413s: never send more inputs
        self.fastest: float | None = None  # seconds: the server's per-request cost
        self.seconds_per_token: float | None = None  # best seen, overhead included
        self.last_change = -math.inf

    def inputs_cap(self) -> int | None:
        caps = [c for c in (self.max_inputs, self.too_large_above) if c is not None]
        finite = [c for c in caps if math.isfinite(c)]
        return max(1, int(min(finite))) if finite else None

    def predict(self, tokens: int) -> float | None:
        """Seconds an unqueued answer for ``tokens`` takes, from the fastest answers seen."""
        if self.fastest is None or self.seconds_per_token is None:
            return None
        return max(self.fastest, self.seconds_per_token * tokens)

    def timeout_for(self, tokens: int) -> float | None:
        """The engine's deadline for a request of ``tokens`` (``None``: the provider's own)."""
        predicted = self.predict(tokens)
        if predicted is None:
            return self.timeout
        deadline = max(MIN_TIMEOUT, TIMEOUT_FACTOR * predicted)
        return deadline if self.timeout is None else min(deadline, self.timeout)

    def on_answer(
        self, *, latency: float, inputs: int, tokens: int, sent_at: float, now: float
    ) -> float:
        """Learn from an answer; return how many times slower it was than predicted for its
        size (1.0 while nothing is known): well above 1, the server queues requests."""
        predicted = self.predict(tokens)
        slowdown = 1.0 if predicted is None else latency / predicted
        queued = slowdown > QUEUEING_HOLD
        self.fastest = latency if self.fastest is None else min(self.fastest, latency)
        per_token = latency / max(tokens, 1)
        if self.seconds_per_token is None or per_token < self.seconds_per_token:
            self.seconds_per_token = per_token
        if not self.adaptive or sent_at < self.last_change:
            return slowdown  # one change per round trip: answers to older sizes do not count
        if latency > SLOW_ANSWER:
            self._set(max(1.0, inputs / 2), now)
        elif latency <= FAST_ANSWER and not queued and inputs >= self.max_inputs / 2:
            self._set(self.max_inputs * 2, now)
        return slowdown

    def limits_announced(self) -> None:
        """The server announced rate limits: a hosted API, whose capacity is those limits (the
        pacer keeps to them), not one machine's compute. Requests stop growing from small: each
        takes an even share of what is left per slot, so the job ends in the fewest round trips.
        Timeouts still shrink them."""
        if self.adaptive:
            self.adaptive = False
            self.max_inputs = math.inf

    def on_timeout(self, *, inputs: int, now: float) -> None:
        self._set(max(1.0, min(self.max_inputs, inputs / 2)), now)

    def on_too_large(self, inputs: int) -> None:
        half = max(1, math.ceil(inputs / 2))
        self.too_large_above = min(self.too_large_above or half, half)

    def _set(self, max_inputs: float, now: float) -> None:
        self.max_inputs = max_inputs
        self.last_change = now
