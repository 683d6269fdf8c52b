"""What an answer's headers say about waiting and limits: ``Retry-After`` (seconds or an HTTP
date), ``retry-after-ms``, and the ``x-ratelimit-*`` family, read as a server's untrusted text
(NaN, negative, huge or unreadable values mean nothing, never a crash or an endless wait)."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from embedify.errors import untrusted

#: Characters of a header value quoted in an error.
_QUOTED_CHARS = 40

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str) -> float | None:
    """Seconds in a rate-limit reset value: ``"1s"``, ``"6m0s"``, ``"12ms"`` or a plain number
    (``None``: unreadable, NaN or negative; may be ``math.inf``)."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            return None
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return None if math.isnan(seconds) or seconds < 0 else seconds


@dataclass(frozen=True)
class AskedWait:
    """A wait an answer asks for: ``seconds`` (at least 0, may be ``math.inf``) and the header
    that asks, as ``name: value`` with the value cut short, to quote in errors."""

    seconds: float
    header: str


def asked_wait(headers: Mapping[str, str]) -> AskedWait | None:
    """The wait a response asks for: ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP
    date; one in the past or a negative number: 0), else the latest ``x-ratelimit-reset-*`` of
    a spent budget whose limit is not announced (with ``x-ratelimit-limit-*`` the engine paces
    from its bucket instead; a reset is when the whole bucket is full again, far later than the
    next request fits). ``None`` when it names none that can be read (NaN counts as none)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lowered:
        milliseconds = _seconds(lowered["retry-after-ms"])
        if milliseconds is not None:
            return AskedWait(milliseconds / 1000, _quote("retry-after-ms", lowered))
    if "retry-after" in lowered:
        seconds = _seconds(lowered["retry-after"])
        if seconds is None:
            seconds = _seconds_until(lowered["retry-after"])
        if seconds is not None:
            return AskedWait(seconds, _quote("retry-after", lowered))
    resets = []
    for kind in ("requests", "tokens"):
        remaining = header_number(lowered.get(f"x-ratelimit-remaining-{kind}"))
        spent = remaining is None or remaining <= 0
        name = f"x-ratelimit-reset-{kind}"
        reset = parse_duration(lowered.get(name, ""))
        if announced_limit(lowered, kind) is None and spent and reset is not None:
            resets.append(AskedWait(reset, _quote(name, lowered)))
    return max(resets, key=lambda asked: asked.seconds, default=None)


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """Seconds a response asks to wait (see :func:`asked_wait`): at least 0, may be
    ``math.inf`` (the engine refuses waits over ``max_retry_wait``); ``None`` when it names
    none."""
    asked = asked_wait(headers)
    return None if asked is None else asked.seconds


def _seconds(value: str) -> float | None:
    """A number of seconds: negative is 0, NaN or not a number ``None``."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return None if math.isnan(seconds) else max(0.0, seconds)


def _seconds_until(http_date: str) -> float | None:
    """Seconds from now to an HTTP date (0 if it is past; ``None``: not a date)."""
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
        return max(0.0, moment.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _quote(name: str, lowered: Mapping[str, str]) -> str:
    """``name: value``, the value cut short and stripped of characters that are not printable
    (it is the server's text, going into errors and logs)."""
    return f"{name}: {untrusted(lowered[name], _QUOTED_CHARS)}"


def announced_limit(lowered: Mapping[str, str], kind: str) -> float | None:
    """The server's ``x-ratelimit-limit-<kind>``; ``None`` when absent or below one per minute
    (a bucket that never holds a request is nonsense, not a limit)."""
    limit = header_number(lowered.get(f"x-ratelimit-limit-{kind}"))
    return limit if limit is not None and limit >= 1 else None


def header_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
