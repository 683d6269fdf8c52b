"""One rate budget for all the actors of a job: the decisions, apart from Ray.

A key's limits (requests and tokens per minute) belong to the key, not to an actor. A
:class:`Budget` holds one continuously refilling bucket per limit, the way the provider's server
does, and hands out capacity in *leases*: a worker asks for what its next request needs and
gets up to ``LEASE_SECONDS`` of refill at once, so it coordinates once per several requests, not
once per request. Capacity is charged when it is leased (before the server charges it, so the
budget never runs ahead of the server) and the unspent rest comes back when the worker asks for
its next lease.

A lease is good for ``LEASE_TTL`` seconds. That bounds how stale a grant may be when it is
spent, and makes a dead worker harmless: its lease leaves the ledger when it expires, and what
it held (charged, as it may have been spent) is refilled like anything spent.

Kinds of capacity: ``requests`` and ``tokens`` are the client budgets a user sets
(``requests_per_minute``, ``tokens_per_minute``), counted as the engine estimates tokens;
``server-requests`` and ``server-tokens`` are the limits the server announces in its
``x-ratelimit-*`` headers, counted in the tokens the server charges. A kind with no bucket is
not limited.

Nothing here sleeps or reads the time: every method takes ``now`` (seconds on the budget's own
clock), so each decision is tested with a fake clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from embedify.engine.pacing import TokenBucket

#: A lease holds this many seconds of a bucket's refill (or what one request needs, when that
#: is more).
LEASE_SECONDS = 0.5
#: A lease is void this many seconds after it was asked for.
LEASE_TTL = 5.0
#: A worker told to wait asks again after at least this long.
MIN_RETRY = 0.01
CLIENT_KINDS = ("requests", "tokens")
SERVER_KINDS = ("server-requests", "server-tokens")
KINDS = CLIENT_KINDS + SERVER_KINDS


@dataclass(frozen=True)
class Grant:
    """The answer to an ask: a lease (``lease_id`` and its ``amounts``; a kind missing from
    ``amounts`` is unlimited), or none (``lease_id`` ``None``) and ``retry_in`` seconds until
    the need fits. ``ttl``: seconds the lease stays good, from the moment it was asked for."""

    lease_id: int | None
    amounts: Mapping[str, float] = field(default_factory=dict)
    ttl: float = LEASE_TTL
    retry_in: float = 0.0


@dataclass
class _Outstanding:
    amounts: dict[str, float]
    expires_at: float


class Budget:
    """The shared buckets, the pause after a 429, and the ledger of leases."""

    def __init__(
        self,
        per_minute: Mapping[str, float],
        now: float,
        *,
        lease_seconds: float = LEASE_SECONDS,
        ttl: float = LEASE_TTL,
    ) -> None:
        unknown = sorted(set(per_minute) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown budget kinds {unknown}; use {', '.join(KINDS)}.")
        self.buckets = {
            kind: TokenBucket.per_minute(limit, now) for kind, limit in per_minute.items()
        }
        self.lease_seconds = lease_seconds
        self.ttl = ttl
        self.paused_until = -math.inf
        self.leases: dict[int, _Outstanding] = {}
        self._next_id = 0

    def learn(
        self, limits: Mapping[str, float], remaining: Mapping[str, float], now: float
    ) -> None:
        """A worker read the server's announced ``limits`` (per minute) and ``remaining``. A
        new limit starts its bucket at what remains (the key may be in use elsewhere); a changed
        one resizes it. Later ``remaining`` values are not adopted: the budget charges leases
        before the server charges requests, so its own level is the earlier, safer one."""
        for kind, limit in limits.items():
            if kind not in SERVER_KINDS or not limit >= 1:
                continue
            bucket = self.buckets.get(kind)
            if bucket is None:
                level = remaining.get(kind)
                self.buckets[kind] = TokenBucket.per_minute(limit, now, level)
            elif bucket.capacity != limit:
                bucket.resize(limit, now)

    def pause(self, seconds: float, now: float) -> None:
        """A worker met a 429 that asks to wait ``seconds``: no lease until then."""
        self.paused_until = max(self.paused_until, now + seconds)

    def expire(self, now: float) -> None:
        """Drop the leases whose time is up (what they held stays charged)."""
        for lease_id in [i for i, lease in self.leases.items() if lease.expires_at <= now]:
            del self.leases[lease_id]

    def give_back(self, lease_id: int, unspent: Mapping[str, float], now: float) -> None:
        """A worker returns what it did not spend of a lease still in the ledger (an expired
        lease's capacity is not returned: its worker can no longer spend it, and the refill has
        covered it)."""
        self.expire(now)
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return
        for kind, amount in unspent.items():
            bucket = self.buckets.get(kind)
            if bucket is not None and kind in lease.amounts:
                bucket.spend(-min(max(0.0, amount), lease.amounts[kind]), now)
                bucket.level = min(bucket.level, bucket.capacity)

    def grant(self, need: Mapping[str, float], now: float) -> Grant:
        """Lease ``lease_seconds`` of each bucket's refill (or what ``need``, the next request,
        asks for, when that is more); or nothing, with how long until it fits. Waiting for a
        whole chunk rather than leasing crumbs of an empty bucket keeps the asks per worker to
        about one per chunk."""
        self.expire(now)
        wanted = {
            kind: max(need.get(kind, 0.0), bucket.rate * self.lease_seconds)
            for kind, bucket in self.buckets.items()
        }
        waits = [self.paused_until - now]
        waits += [bucket.delay_for(wanted[kind], now) for kind, bucket in self.buckets.items()]
        wait = max(waits)
        if wait > 0:
            return Grant(None, retry_in=max(MIN_RETRY, wait))
        for kind, bucket in self.buckets.items():
            bucket.spend(wanted[kind], now)
        self._next_id += 1
        self.leases[self._next_id] = _Outstanding(wanted, now + self.ttl)
        return Grant(self._next_id, wanted, self.ttl)


class Wallet:
    """A worker's side of the budget: the lease it holds and what is left of it."""

    def __init__(self) -> None:
        self.lease_id: int | None = None
        self.balance: dict[str, float] = {}
        self.expires_at = -math.inf
        self.server_limited = False  # the lease was granted knowing the server's limits

    def covers(self, need: Mapping[str, float], now: float) -> bool:
        """Whether the lease held can pay for ``need`` now."""
        if self.lease_id is None or now >= self.expires_at:
            return False
        return all(self.balance.get(kind, math.inf) >= amount for kind, amount in need.items())

    def take(self, grant: Grant, asked_at: float) -> None:
        """Hold a new lease (the old one was given back in the ask that got it)."""
        self.lease_id = grant.lease_id
        self.balance = dict(grant.amounts)
        self.expires_at = asked_at + grant.ttl
        self.server_limited = any(kind in grant.amounts for kind in SERVER_KINDS)

    def spend(self, amounts: Mapping[str, float]) -> None:
        for kind, amount in amounts.items():
            if kind in self.balance:
                self.balance[kind] -= amount

    def refund(self, lease_id: int | None, amounts: Mapping[str, float], now: float) -> None:
        """A request the server refused (429) was not charged: its capacity returns to the
        lease it came from, if that is still the one held."""
        if lease_id is not None and lease_id == self.lease_id and now < self.expires_at:
            self.spend({kind: -amount for kind, amount in amounts.items()})

    def hand_back(self) -> tuple[int, dict[str, float]] | None:
        """The lease held and its unspent rest, to give back with the next ask; the wallet is
        then empty."""
        if self.lease_id is None:
            return None
        handed = self.lease_id, {kind: max(0.0, left) for kind, left in self.balance.items()}
        self.lease_id, self.balance, self.expires_at = None, {}, -math.inf
        return handed
