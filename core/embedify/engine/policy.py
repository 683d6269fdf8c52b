"""What to do after a request failed: one pure function, :func:`decide`.

It sees the error, what is known about the request (its inputs, earlier errors), the clock and
the job's settings, and returns a decision the executor carries out: retry after a delay, split
the batch, shorten one input, fail some inputs, or stop the job. Rules:

- 429: wait (the provider's ``Retry-After``, else backoff) and retry. A 429 is not an error
  while the job makes progress; the job stops only after ``rate_limit_timeout`` seconds with
  no successful request.
- No wait a server asks for is longer than ``max_retry_wait``: asking for more stops the job at
  once (a 5xx: fails its inputs), quoting what the server sent. A wait that is not a number
  of seconds at least 0 (NaN, negative) counts as none named.
- Other transient errors (5xx, timeouts, dropped connections) are retried up to
  ``max_retries`` times with exponential backoff and jitter; a timed-out batch is split instead
  of sent again unchanged; a host name that does not resolve is retried once, then the job
  stops with the host in the message.
- A batch rejected as too large is split; an over-long input is cut (``truncate``) or fails.
- Permanent errors fail the batch's inputs; those every request would hit (bad key, unknown
  model, exhausted quota, wrong configuration) stop the job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from embedify.errors import (
    BatchTooLargeError,
    ConfigurationError,
    ConnectionFailedError,
    InputTooLongError,
    PermanentError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
    TransientError,
)

#: Default of the ``max_retry_wait`` option: a minute's rate-limit window twice over, so a
#: per-minute limit is always waited out, while a wait for a daily quota or a hostile header
#: fails at once instead of holding the caller for hours.
DEFAULT_MAX_RETRY_WAIT = 120.0
MAX_BACKOFF = 30.0
#: Times one input may be cut shorter after the provider rejected it as too long.
MAX_SHRINKS = 8


@dataclass(frozen=True)
class Settings:
    max_retries: int
    rate_limit_timeout: float
    truncate: Literal["error", "end", "start"]
    max_tokens_per_input: int | None
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT


@dataclass(frozen=True)
class Attempt:
    """The request that failed: caller indices of its inputs, their tokens and earlier cuts,
    how many errors (429s apart) and 429s it met before this one, and the header by which its
    answer asked for a wait (``"retry-after: 30"``), quoted when that wait is refused."""

    indices: Sequence[int]
    tokens: Sequence[int]
    shrinks: Sequence[int]
    errors: int = 0
    rate_limits: int = 0
    server_said: str | None = None


@dataclass(frozen=True)
class Retry:
    delay: float


@dataclass(frozen=True)
class Split:
    """Send the batch as two halves."""


@dataclass(frozen=True)
class Shorten:
    """Cut the input at ``position`` of the batch to ``tokens`` and send the batch again."""

    position: int
    tokens: int


@dataclass(frozen=True)
class FailItems:
    """Give up on the inputs at ``positions`` of the batch (all when ``None``); send the rest."""

    error: ProviderError
    positions: tuple[int, ...] | None = None


@dataclass(frozen=True)
class StopJob:
    """Every other request would fail the same way: stop sending, fail what is left."""

    error: ProviderError | ConfigurationError


Decision = Retry | Split | Shorten | FailItems | StopJob


def backoff_delay(attempt: int, retry_after: float | None, jitter: float) -> float:
    """Seconds before retry number ``attempt`` (1-based). The provider's ``retry_after`` plus
    up to 10%; else exponential backoff from 0.5 s, capped, with jitter so that many clients do
    not retry in step. ``jitter`` is uniform in [0, 1)."""
    if retry_after is not None:
        return retry_after * (1.0 + 0.1 * jitter)
    return min(MAX_BACKOFF, 0.5 * 2.0 ** (attempt - 1)) * (0.5 + 0.5 * jitter)


def readable_wait(seconds: float | None) -> float | None:
    """A wait a server asked for, as the engine takes it: NaN or negative is no wait named
    (``None``); what remains is at least 0, and may be ``math.inf``."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def _refused_wait(
    error: TransientError, seconds: float, attempt: Attempt, settings: Settings
) -> str:
    """One line saying which wait was refused, what the server sent, and how to allow it."""
    said = f" ({attempt.server_said})" if attempt.server_said else ""
    shown = f"{seconds:.0f}" if seconds < 1e9 else f"{seconds:.3g}"
    return (
        f"the server asked to wait {shown} s{said} before retrying, more than "
        f"max_retry_wait={settings.max_retry_wait:g} s: {error}. Try again later, or raise "
        "max_retry_wait to wait that long."
    )


def decide(
    error: ProviderError | ConfigurationError,
    attempt: Attempt,
    *,
    now: float,
    last_success: float,
    settings: Settings,
    jitter: float,
) -> Decision:
    """The decision after ``attempt`` failed with ``error``; see the module docstring."""
    if isinstance(error, ConfigurationError):
        return StopJob(error)
    if isinstance(error, RateLimitError):
        return _rate_limited(error, attempt, now, last_success, settings, jitter)
    if isinstance(error, TransientError):
        return _transient(error, attempt, settings, jitter)
    if isinstance(error, BatchTooLargeError):
        return Split() if len(attempt.indices) > 1 else FailItems(error)
    if isinstance(error, InputTooLongError):
        return _too_long(error, attempt, settings)
    if isinstance(error, PermanentError) and error.stops_job:
        return StopJob(error)
    return FailItems(error)


def _rate_limited(
    error: RateLimitError,
    attempt: Attempt,
    now: float,
    last_success: float,
    settings: Settings,
    jitter: float,
) -> Decision:
    asked = readable_wait(error.retry_after)
    if asked is not None and asked > settings.max_retry_wait:
        return StopJob(
            RateLimitError(
                _refused_wait(error, asked, attempt, settings),
                status=error.status,
                retry_after=asked,
            )
        )
    delay = min(settings.max_retry_wait, backoff_delay(attempt.rate_limits + 1, asked, jitter))
    if now + delay - last_success > settings.rate_limit_timeout:
        return StopJob(
            RateLimitError(
                f"rate limited with no successful request for {now - last_success:.0f} s "
                f"(rate_limit_timeout={settings.rate_limit_timeout:g}): {error}. Raise the "
                "account's limits, or set requests_per_minute/tokens_per_minute to share them.",
                status=error.status,
                retry_after=asked,
            )
        )
    return Retry(delay)


def _transient(
    error: TransientError, attempt: Attempt, settings: Settings, jitter: float
) -> Decision:
    if isinstance(error, ConnectionFailedError) and error.name_resolution:
        if attempt.errors >= 1:
            host = f"host {error.host!r}" if error.host else "the server's host name"
            return StopJob(
                ConnectionFailedError(
                    f"cannot resolve {host}: check the URL for a typo, and the network. ({error})",
                    host=error.host,
                    name_resolution=True,
                    status=error.status,
                )
            )
        return Retry(backoff_delay(1, None, jitter))
    asked = readable_wait(error.retry_after)
    if asked is not None and asked > settings.max_retry_wait:
        refused = _refused_wait(error, asked, attempt, settings)
        return FailItems(TransientError(refused, status=error.status, retry_after=asked))
    if attempt.errors >= settings.max_retries:
        return FailItems(error)
    if isinstance(error, RequestTimeoutError) and len(attempt.indices) > 1:
        return Split()
    delay = backoff_delay(attempt.errors + 1, asked, jitter)
    return Retry(min(settings.max_retry_wait, delay))


def _too_long(error: InputTooLongError, attempt: Attempt, settings: Settings) -> Decision:
    size = len(attempt.indices)
    if error.index is not None and 0 <= error.index < size:
        position = error.index
    elif size == 1:
        position = 0
    else:  # the provider did not say which input: halve until it is alone
        return Split()
    culprit = attempt.indices[position]
    if settings.truncate == "error" or attempt.shrinks[position] >= MAX_SHRINKS:
        located = InputTooLongError(
            f"input {culprit} is too long: {error}. Shorten it, or pass truncate='end' "
            "(or 'start') to cut it.",
            status=error.status,
            index=culprit,
            tokens=error.tokens,
        )
        return FailItems(located, (position,))
    current = attempt.tokens[position]
    limit = settings.max_tokens_per_input
    if error.tokens and limit and error.tokens > limit:
        target = math.floor(current * limit / error.tokens * 0.95)
    else:
        target = math.floor(current * 0.75)
    return Shorten(position, max(1, target))
