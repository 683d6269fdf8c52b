"""The actors' engines pace from one shared :class:`~embedify_ray.budget.Budget`.

A small Ray actor (:class:`BudgetKeeper`) owns the budget. Each embedding actor's engine gets a
:class:`LeasedPacer`: the engine's own pacer (its in-flight control, the server's headers, the
pause after a 429) that also needs a lease from the keeper before a request starts. Asking is
never a blocking call inside the engine's event loop: the pacer sends the ask and tells the
engine to look again a few milliseconds later. One process without Ray never meets any of this.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from embedify.engine.pacing import Pacer, Ticket
from embedify.engine.policy import DEFAULT_MAX_RETRY_WAIT, readable_wait
from embedify_ray.budget import Budget, Grant, Wallet

if TYPE_CHECKING:
    from embedify import EmbeddingModel

#: How soon the engine looks again while an ask is on its way to the keeper.
ASK_POLL = 0.002


class PendingGrant(Protocol):
    def ready(self) -> bool: ...

    def result(self) -> Grant: ...


class BudgetLink(Protocol):
    """How a worker reaches the budget (a Ray actor, or a budget in this process in tests)."""

    def ask(
        self,
        need: Mapping[str, float],
        give_back: tuple[int, dict[str, float]] | None,
        limits: Mapping[str, float],
        remaining: Mapping[str, float],
    ) -> PendingGrant: ...

    def pause(self, seconds: float) -> None: ...


class BudgetKeeper:
    """The Ray actor that owns a job's budget; one call per lease (see :class:`Budget`)."""

    def __init__(self, per_minute: Mapping[str, float]) -> None:
        self.budget = Budget(per_minute, time.monotonic())

    def grant(
        self,
        need: Mapping[str, float],
        give_back: tuple[int, dict[str, float]] | None,
        limits: Mapping[str, float],
        remaining: Mapping[str, float],
    ) -> Grant:
        now = time.monotonic()
        if give_back is not None:
            self.budget.give_back(*give_back, now)
        self.budget.learn(limits, remaining, now)
        return self.budget.grant(need, now)

    def pause(self, seconds: float) -> None:
        self.budget.pause(seconds, time.monotonic())

    def leases(self) -> int:
        """Leases in the ledger now (expired ones dropped)."""
        self.budget.expire(time.monotonic())
        return len(self.budget.leases)


class _RayPending:
    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def ready(self) -> bool:
        import ray

        done, _ = ray.wait([self.ref], timeout=0)
        return bool(done)

    def result(self) -> Grant:
        import ray

        grant: Grant = ray.get(self.ref)
        return grant


class RayBudgetLink:
    """A :class:`BudgetLink` to a :class:`BudgetKeeper` actor."""

    def __init__(self, keeper: Any) -> None:
        self.keeper = keeper

    def ask(
        self,
        need: Mapping[str, float],
        give_back: tuple[int, dict[str, float]] | None,
        limits: Mapping[str, float],
        remaining: Mapping[str, float],
    ) -> PendingGrant:
        return _RayPending(
            self.keeper.grant.remote(dict(need), give_back, dict(limits), dict(remaining))
        )

    def pause(self, seconds: float) -> None:
        self.keeper.pause.remote(seconds)


def start_keeper(per_minute: Mapping[str, float]) -> Any:
    """A :class:`BudgetKeeper` actor (it reserves no CPU) and its handle."""
    import ray

    return ray.remote(num_cpus=0)(BudgetKeeper).remote(dict(per_minute))


class LeasedPacer(Pacer):
    """The engine's pacer, which also spends only capacity leased from the shared budget."""

    link: BudgetLink
    wallet: Wallet
    _pending: tuple[PendingGrant, float] | None  # an ask on its way, and when it was sent
    _retry_at: float  # the budget said: no lease before then
    _spent: weakref.WeakKeyDictionary[Ticket, tuple[int | None, dict[str, float]]]

    @classmethod
    def taking_over(cls, pacer: Pacer, link: BudgetLink) -> LeasedPacer:
        """The same pacer (what the engine built for the model), leasing through ``link``."""
        leased = cls.__new__(cls)
        vars(leased).update(vars(pacer))
        leased.link = link
        leased.wallet = Wallet()
        leased._pending = None
        leased._retry_at = -math.inf
        leased._spent = weakref.WeakKeyDictionary()
        return leased

    def _need(self, tokens: int) -> dict[str, float]:
        charged = self.charged_tokens(tokens)
        return {"requests": 1, "tokens": tokens, "server-requests": 1, "server-tokens": charged}

    def delay_before(
        self, tokens: int, now: float, max_wait: float = DEFAULT_MAX_RETRY_WAIT
    ) -> float:
        delay = super().delay_before(tokens, now, max_wait)
        return delay if delay > 0 else self._lease_delay(self._need(tokens), now)

    def _lease_delay(self, need: Mapping[str, float], now: float) -> float:
        """0 when the lease held pays for ``need``; else ask for one (or wait for the answer,
        or for the time the budget named) and say when to look again."""
        if self._pending is not None:
            pending, asked_at = self._pending
            if not pending.ready():
                return ASK_POLL
            self._pending = None
            grant = pending.result()
            if grant.lease_id is None:
                self._retry_at = asked_at + grant.retry_in
            else:
                self.wallet.take(grant, asked_at)
        if self.server and self.wallet.lease_id is not None and not self.wallet.server_limited:
            self._retry_at = now  # leased before the server's limits were known: ask again
        elif self.wallet.covers(need, now):
            return 0.0
        if now < self._retry_at:
            return self._retry_at - now
        limits = {f"server-{kind}": bucket.capacity for kind, bucket in self.server.items()}
        remaining = {f"server-{kind}": bucket.level for kind, bucket in self.server.items()}
        self._pending = self.link.ask(need, self.wallet.hand_back(), limits, remaining), now
        self._retry_at = -math.inf
        return ASK_POLL

    def start(self, tokens: int, now: float) -> Ticket:
        ticket = super().start(tokens, now)
        need = self._need(tokens)
        self.wallet.spend(need)
        self._spent[ticket] = (self.wallet.lease_id, need)
        return ticket

    def on_rate_limited(
        self,
        ticket: Ticket,
        retry_after: float | None,
        now: float,
        max_wait: float = DEFAULT_MAX_RETRY_WAIT,
    ) -> None:
        """As the engine's pacer does, and: the refused request's capacity returns to the
        lease, and the wait the server asks for pauses every worker's leases."""
        super().on_rate_limited(ticket, retry_after, now, max_wait)
        lease_id, need = self._spent.pop(ticket, (None, {}))
        self.wallet.refund(lease_id, need, now)
        wait = readable_wait(retry_after)
        if wait is not None and wait <= max_wait:
            self.link.pause(wait)


def share_budget(model: EmbeddingModel, link: BudgetLink) -> None:
    """Make ``model``'s engine pace from the budget behind ``link``, before its first job."""
    from embedify.engine.job import pace_with

    pace_with(model, lambda pacer: LeasedPacer.taking_over(pacer, link))
