"""The shared budget's decisions, on a fake clock: grant, refill, expire, give back, pause, and
the leasing pacer that carries them out in each actor's engine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from embedify_ray import embed_file
from embedify_ray.budget import LEASE_TTL, Budget, Grant, Wallet
from embedify_ray.leasing import ASK_POLL, LeasedPacer

from embedify import get_model
from embedify.engine.job import model_state
from embedify.engine.pacing import Pacer

TPM = 6_000.0  # 100 tokens a second


def test_a_lease_holds_a_chunk_of_refill_not_just_one_request() -> None:
    budget = Budget({"tokens": TPM, "requests": 600}, now=0.0)
    grant = budget.grant({"tokens": 10, "requests": 1}, now=0.0)
    assert grant.lease_id is not None
    assert grant.amounts == {"tokens": 50.0, "requests": 5.0}  # half a second of each refill
    assert budget.buckets["tokens"].level == TPM - 50


def test_no_lease_beyond_the_bucket_and_the_wait_is_the_refill_time() -> None:
    budget = Budget({"tokens": TPM}, now=0.0)
    budget.buckets["tokens"].level = 0.0
    refused = budget.grant({"tokens": 200}, now=0.0)
    assert refused.lease_id is None
    assert refused.retry_in == pytest.approx(2.0)  # 200 tokens at 100 a second
    assert budget.grant({"tokens": 200}, now=1.0).lease_id is None
    granted = budget.grant({"tokens": 200}, now=2.0)
    assert granted.amounts == {"tokens": 200.0}  # what the request needs, no more
    assert budget.buckets["tokens"].level == pytest.approx(0.0)
    crumbs = budget.grant({"tokens": 10}, now=2.1)  # 10 have refilled: not a whole lease yet
    assert crumbs.lease_id is None and crumbs.retry_in == pytest.approx(0.4)


def test_workers_together_never_lease_more_than_the_key_allows() -> None:
    budget = Budget({"tokens": TPM}, now=0.0)
    leased, now = 0.0, 0.0
    while now < 120.0:
        for _ in range(4):  # four workers asking as often as they like
            grant = budget.grant({"tokens": 30}, now)
            leased += sum(grant.amounts.values())
        now += 0.01
    assert leased <= TPM + TPM / 60 * 120 + 30  # a full bucket, then two minutes of refill
    assert leased >= TPM + TPM / 60 * 120 - 4 * 30


def test_unspent_capacity_comes_back_but_not_from_an_expired_lease() -> None:
    budget = Budget({"tokens": TPM}, now=0.0)
    budget.buckets["tokens"].level = 100.0
    grant = budget.grant({"tokens": 10}, now=0.0)
    assert grant.lease_id is not None
    budget.give_back(grant.lease_id, {"tokens": 40.0}, now=0.0)
    assert budget.buckets["tokens"].level == pytest.approx(90.0)
    budget.give_back(grant.lease_id, {"tokens": 40.0}, now=0.0)  # given back once only
    assert budget.buckets["tokens"].level == pytest.approx(90.0)
    late = budget.grant({"tokens": 10}, now=0.0)
    assert late.lease_id is not None
    budget.give_back(late.lease_id, {"tokens": 50.0}, now=LEASE_TTL)
    assert late.lease_id not in budget.leases
    bucket = budget.buckets["tokens"]  # 40 left, then 5 s of refill; the 50 not added back
    assert bucket.delay_for(540, LEASE_TTL) == 0 < bucket.delay_for(541, LEASE_TTL)


def test_a_dead_workers_lease_expires_and_its_capacity_comes_back() -> None:
    budget = Budget({"tokens": 600.0}, now=0.0)  # 10 tokens a second
    dead = budget.grant({"tokens": 600}, now=0.0)  # takes the whole bucket, then dies
    assert dead.amounts == {"tokens": 600.0} and len(budget.leases) == 1
    refused = budget.grant({"tokens": 300}, now=1.0)
    assert refused.lease_id is None and refused.retry_in == pytest.approx(29.0)
    budget.expire(now=LEASE_TTL)
    assert budget.leases == {}  # the ledger does not keep it forever
    alive = budget.grant({"tokens": 300}, now=30.0)
    assert alive.amounts == {"tokens": 300.0}


def test_a_429_pauses_every_lease_until_the_wait_is_over() -> None:
    budget = Budget({"tokens": TPM}, now=0.0)
    budget.pause(2.0, now=1.0)
    assert budget.grant({"tokens": 1}, now=2.0).retry_in == pytest.approx(1.0)
    assert budget.grant({"tokens": 1}, now=3.0).lease_id is not None


def test_server_limits_are_learned_from_a_workers_headers() -> None:
    budget = Budget({}, now=0.0)
    assert budget.grant({"server-tokens": 1e9}, now=0.0).amounts == {}  # nothing known: free
    budget.learn({"server-tokens": TPM}, {"server-tokens": 1_000.0}, now=0.0)
    assert budget.buckets["server-tokens"].level == 1_000.0  # the key is in use elsewhere
    budget.learn({"server-tokens": 2 * TPM}, {"server-tokens": 0.0}, now=0.0)
    assert budget.buckets["server-tokens"].capacity == 2 * TPM
    assert budget.buckets["server-tokens"].level == 1_000.0  # later remaining: not adopted
    with pytest.raises(ValueError, match="unknown budget kinds"):
        Budget({"token": 1.0}, now=0.0)


def test_the_wallet_pays_until_its_lease_is_spent_or_void() -> None:
    wallet = Wallet()
    assert not wallet.covers({"tokens": 1}, now=0.0)
    wallet.take(Grant(7, {"tokens": 100.0}, ttl=5.0), asked_at=10.0)
    assert wallet.covers({"tokens": 100, "requests": 1}, now=10.0)  # requests: not limited
    wallet.spend({"tokens": 80})
    assert not wallet.covers({"tokens": 30}, now=10.0)
    wallet.refund(7, {"tokens": 10}, now=11.0)  # a 429: the server did not charge it
    assert wallet.covers({"tokens": 30}, now=11.0)
    assert not wallet.covers({"tokens": 1}, now=15.0)  # void once the ttl is over
    assert wallet.hand_back() == (7, {"tokens": 30.0})
    assert wallet.hand_back() is None


class _Now:
    """An answer that is already there (a budget in this process, on the fake clock)."""

    def __init__(self, grant: Grant) -> None:
        self.grant = grant

    def ready(self) -> bool:
        return True

    def result(self) -> Grant:
        return self.grant


class LocalLink:
    def __init__(self, budget: Budget) -> None:
        self.budget, self.now, self.asks, self.pauses = budget, 0.0, 0, []

    def ask(
        self,
        need: Mapping[str, float],
        give_back: tuple[int, dict[str, float]] | None,
        limits: Mapping[str, float],
        remaining: Mapping[str, float],
    ) -> _Now:
        self.asks += 1
        if give_back is not None:
            self.budget.give_back(*give_back, self.now)
        self.budget.learn(limits, remaining, self.now)
        return _Now(self.budget.grant(need, self.now))

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.budget.pause(seconds, self.now)


def _leased(link: LocalLink) -> LeasedPacer:
    pacer = Pacer(start_in_flight=64, max_in_flight=64, now=0.0)
    return LeasedPacer.taking_over(pacer, link)


def test_two_leasing_pacers_together_keep_to_one_budget() -> None:
    link = LocalLink(Budget({"tokens": TPM}, now=0.0))
    link.budget.buckets["tokens"].level = 0.0
    workers = [_leased(link), _leased(link)]
    requests = 0
    now = 0.0
    while now < 60.0:
        link.now = now
        for worker in workers:
            for _ in range(100):  # as many as the worker may start now
                if worker.delay_before(5, now) > 0:
                    break
                worker.finish()
                worker.start(5, now)
                requests += 1
        now += 0.05
    assert TPM - 2 * 50 <= requests * 5 <= TPM  # one minute of refill between them, not two
    assert link.asks < requests / 2  # a lease pays for several requests


def test_a_429_gives_the_capacity_back_and_pauses_the_others() -> None:
    link = LocalLink(Budget({"tokens": TPM}, now=0.0))
    pacer, other = _leased(link), _leased(link)
    assert pacer.delay_before(10, 0.0) == ASK_POLL  # asked: the answer is read next time
    assert pacer.delay_before(10, 0.0) == 0
    ticket = pacer.start(10, 0.0)
    left = pacer.wallet.balance["tokens"]
    pacer.on_rate_limited(ticket, 3.0, 0.0)
    assert pacer.wallet.balance["tokens"] == left + 10
    assert link.pauses == [3.0]
    assert other.delay_before(10, 0.0) == ASK_POLL
    assert other.delay_before(10, 0.0) == pytest.approx(3.0)  # told to come back after it


def test_what_a_lease_did_not_spend_goes_back_with_the_next_ask() -> None:
    link = LocalLink(Budget({"tokens": TPM}, now=0.0))
    pacer = _leased(link)
    pacer.delay_before(10, 0.0)
    assert pacer.delay_before(10, 0.0) == 0  # a lease of 50
    pacer.start(10, 0.0)
    pacer.finish()
    assert link.budget.buckets["tokens"].level == TPM - 50
    assert pacer.delay_before(45, 0.0) == ASK_POLL  # 40 left: not enough, so it asks again
    assert link.budget.buckets["tokens"].level == TPM - 10 - 50  # the 40 back, 50 leased


def test_one_process_keeps_the_engines_own_pacer(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"text": "row {i}"}}\n' for i in range(10)))
    model = get_model("fake:8", tokens_per_minute=6_000)
    embed_file(source, tmp_path / "out", model)
    state = model_state(model)
    assert state is not None and type(state.pacer) is Pacer
