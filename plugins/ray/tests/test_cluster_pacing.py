"""On a real local Ray cluster: actors lease one key's token budget from a shared keeper."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from embedify_openai.testing import FakeOpenAI, count_tokens, serve_fake_openai, vector_for
from embedify_ray import embed_file
from embedify_ray.budget import LEASE_TTL, Grant
from embedify_ray.leasing import RayBudgetLink, start_keeper


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_actors_share_a_token_limit_without_a_storm_of_429s(tmp_path: Path) -> None:
    # 60,000 tokens a minute (1,000 a second), the bucket a tenth full at the start; the corpus
    # holds 11,000 tokens, so 5,000 wait for the refill. Two actors that each believed they
    # had the whole budget would each send the first 6,000 tokens' worth at once.
    texts = [
        f"passage {i} about subject {i % 13} in room {i % 3} of the house" for i in range(1_000)
    ]
    assert sum(count_tokens(text) for text in texts) == 11_000  # 11 of the server's tokens each
    fake = FakeOpenAI(tokens_per_minute=60_000, initial_fill=0.1)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), source)
    with serve_fake_openai(fake) as server:
        embed_file(
            source,
            tmp_path / "out",
            "openai:text-embedding-3-small",
            ray_address="local",
            actors=2,
            part_rows=250,
            base_url=server.base_url,
            api_key=server.api_key,
            dimensions=8,
        )
    written = pa.concat_tables(
        pq.read_table(p) for p in sorted((tmp_path / "out").glob("*.parquet"))
    )
    assert written.column("id").to_pylist() == list(range(len(texts)))  # no row lost
    vectors = written.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, 8)
    expected = np.stack([vector_for("text-embedding-3-small", text, 8) for text in texts])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    statuses = [entry["status"] for entry in fake.log]
    assert statuses.count(429) <= 0.1 * len(statuses), statuses


@ray.remote(num_cpus=0)
class Holder:
    """A worker that leases capacity and is then killed before it gives any back."""

    def __init__(self, keeper: Any) -> None:
        self.link = RayBudgetLink(keeper)

    def lease(self, tokens: float) -> Grant:
        pending = self.link.ask({"tokens": tokens}, None, {}, {})
        while not pending.ready():
            time.sleep(0.01)
        return pending.result()


def test_a_killed_workers_lease_comes_back() -> None:
    keeper = start_keeper({"tokens": 600.0})  # 10 tokens a second
    doomed = Holder.remote(keeper)
    taken = ray.get(doomed.lease.remote(600.0))
    assert taken.amounts == {"tokens": 600.0}  # the whole budget
    ray.kill(doomed)
    assert ray.get(keeper.leases.remote()) == 1
    survivor = Holder.remote(keeper)
    refused = ray.get(survivor.lease.remote(50.0))
    assert refused.lease_id is None and 0 < refused.retry_in <= 5.0
    deadline = time.monotonic() + 4 * LEASE_TTL
    while ray.get(keeper.leases.remote()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.get(keeper.leases.remote()) == 0  # the dead worker's lease expired
    granted = ray.get(survivor.lease.remote(50.0))
    assert granted.amounts == {"tokens": 50.0}
