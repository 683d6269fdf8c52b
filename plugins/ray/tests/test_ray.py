"""On a real local Ray cluster (2 CPUs): Ray Data and the CLI's --ray path."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from embedify_openai.testing import API_KEY, FakeOpenAI
from embedify_ray import embed_dataset, embed_file

from embedify import get_model
from embedify.testing import LoopbackServer

ROWS = 10_000


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    yield
    ray.shutdown()


def texts(count: int) -> list[str]:
    return [f"passage {i} on subject {i % 13} in room {i % 3}" for i in range(count)]


def test_embed_dataset_keeps_ids_and_gives_the_in_process_vectors() -> None:
    corpus = texts(ROWS)
    ds = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(corpus)])
    out = embed_dataset(ds, "fake:32", rows_per_call=1_000).to_arrow_refs()
    table = pa.concat_tables(ray.get(out))
    assert table.column("id").to_pylist() == list(range(ROWS))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(flat.reshape(ROWS, 32), get_model("fake:32").embed(corpus))


def test_cli_path_on_ray_writes_what_the_in_process_path_writes(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(ROWS)), "text": texts(ROWS)}), source)
    on_ray = embed_file(source, tmp_path / "ray", "fake:32", part_rows=2_000, ray_address="local")
    local = embed_file(source, tmp_path / "local", "fake:32", part_rows=2_000)
    assert on_ray.embedded_rows == local.embedded_rows == ROWS
    for part in sorted((tmp_path / "local").glob("part-*.parquet")):
        assert pq.read_table(tmp_path / "ray" / part.name).equals(pq.read_table(part))


def test_actors_share_a_keys_request_budget() -> None:
    # The key allows 300 requests a minute (a bucket of 300 that refills 5 a second); four
    # actors send 360 one-text requests under a budget of 270, the 10% headroom a user leaves
    # (at exactly 300 the server's bucket runs at zero, and requests that leave evenly but
    # arrive bunched on a loaded machine meet a few refusals). Each actor spending the whole
    # budget would send 270 at once each and meet hundreds of refusals; sharing it, they pace.
    fake = FakeOpenAI(requests_per_minute=300)
    texts = [f"text number {i}" for i in range(360)]
    with LoopbackServer(fake) as server:
        ds = ray.data.from_items([{"text": text} for text in texts])
        out = embed_dataset(
            ds,
            "openai:text-embedding-3-small",
            actors=4,
            rows_per_call=90,
            batch_size=1,
            requests_per_minute=270,
            base_url=server.url,
            api_key=API_KEY,
        ).take_all()
    statuses = [entry["status"] for entry in fake.log]
    assert len(out) == 360
    assert statuses.count(429) == 0
    assert statuses.count(200) == 360


@pytest.mark.parametrize("kind", [pa.dictionary(pa.int32(), pa.string()), pa.string_view()])
def test_a_dictionary_or_string_view_column_is_embedded_on_ray(
    tmp_path: Path, kind: pa.DataType
) -> None:
    corpus = texts(3_000)
    table = pa.table({"id": list(range(3_000)), "text": pa.array(corpus).cast(kind)})
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    assert pq.read_schema(source).field("text").type == kind  # what a reader gets back
    embed_file(source, tmp_path / "out", "fake:16", part_rows=1_000, ray_address="local")
    written = pa.concat_tables(
        pq.read_table(p) for p in sorted((tmp_path / "out").glob("*.parquet"))
    )
    flat = written.column("embedding").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(flat.reshape(3_000, 16), get_model("fake:16").embed(corpus))
    assert written.schema.field("text").type == kind  # the rows are written as they were read
    if pa.types.is_dictionary(kind):  # Ray Data itself cannot hold string views
        rows = embed_dataset(ray.data.from_arrow(table), "fake:16").take(1)
        vector = get_model("fake:16").embed(corpus[:1])[0]
        np.testing.assert_array_equal(rows[0]["embedding"], vector)


def test_a_normal_run_on_ray_prints_no_error_lines(tmp_path: Path) -> None:
    """What a user sees of Ray on a job that goes well: no ERROR line, no traceback."""
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts(3_000)}), source)
    command = ["embed-dataset", str(source), str(tmp_path / "out"), "-m", "fake:16", "--ray"]
    finished = subprocess.run(
        [sys.executable, "-m", "embedify", *command, "--part-rows", "1000"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr
    assert "3000 rows in 3 parts: 3000 embedded" in finished.stdout
    noise = [
        line for line in finished.stderr.splitlines() if re.search(r"\bERROR\b|Traceback", line)
    ]
    assert noise == []
