"""The in-process path: streaming parts, resuming, refusing to mix runs, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embedify_ray.dataset import plan_actors
from embedify_ray.files import embed_file, read_parts, scan_input

from embedify import get_model
from embedify.cli import cli
from embedify.errors import ConfigurationError, EmbeddingJobError, PermanentError
from embedify.fake import FakeEmbeddingModel


def read_output(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(part) for part in sorted(folder.glob("part-*.parquet")))


def test_parts_hold_the_same_rows_whatever_the_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    table = pa.table({"id": list(range(2_500)), "text": [f"t{i}" for i in range(2_500)]})
    pq.write_table(table, path, row_group_size=333)
    parts = list(read_parts(scan_input(path, "text", "embedding"), 1_000))
    assert [part.num_rows for part in parts] == [1_000, 1_000, 500]
    assert [part.column("id")[0].as_py() for part in parts] == [0, 1_000, 2_000]
    assert pa.concat_tables(parts).column("id").to_pylist() == list(range(2_500))


def test_reading_streams_part_by_part(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(f'{{"text": "t{i}"}}\n' for i in range(30)))
    parts = read_parts(scan_input(path, "text", "embedding"), 10)
    assert next(parts).num_rows == 10
    with path.open("a") as more:  # a line appended now is not read for the first part
        more.write("not json\n")
    with pytest.raises(ConfigurationError, match=r"in\.jsonl changed while it was read"):
        list(parts)


def test_a_broken_line_is_named_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(f'{{"text": "t{i}"}}\n' for i in range(30)) + "not json\n")
    with pytest.raises(ConfigurationError, match=r"in.jsonl:31: not JSON"):
        embed_file(path, tmp_path / "out", "fake:8", part_rows=10)
    assert not (tmp_path / "out").exists()


def test_output_keeps_rows_in_order_with_the_models_vectors(
    tmp_path: Path, jsonl: tuple[Path, list[str]]
) -> None:
    path, texts = jsonl
    report = embed_file(path, tmp_path / "out", "fake:16", part_rows=1_000)
    out = read_output(tmp_path / "out")
    assert report.embedded_rows == 2_500 and report.parts == 3
    assert out.column("id").to_pylist() == list(range(2_500))
    assert out.column("text").to_pylist() == texts
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    vectors = np.asarray(out.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(vectors, get_model("fake:16").embed(texts))


class CountingFake(FakeEmbeddingModel):
    embedded: int = 0
    fail_after: int | None = None

    def embed_batch(self, texts: list[str], role: str) -> np.ndarray:  # type: ignore[override]
        if self.fail_after is not None and CountingFake.embedded >= self.fail_after:
            raise PermanentError("the provider went away")
        CountingFake.embedded += len(texts)
        return super().embed_batch(texts, role)  # type: ignore[arg-type]


def test_a_rerun_embeds_only_the_parts_not_written(
    tmp_path: Path, jsonl: tuple[Path, list[str]]
) -> None:
    path, _ = jsonl
    CountingFake.embedded = 0
    crashing = CountingFake("16", batch_size=250)
    crashing.fail_after = 2_000
    with pytest.raises(EmbeddingJobError):
        embed_file(path, tmp_path / "out", crashing, part_rows=1_000)
    assert sorted(p.name for p in (tmp_path / "out").glob("part-*")) == [
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    assert not list((tmp_path / "out").glob(".*tmp"))  # nothing half-written is left

    CountingFake.embedded = 0
    report = embed_file(path, tmp_path / "out", CountingFake("16"), part_rows=1_000)
    assert CountingFake.embedded == 500
    assert (report.skipped_rows, report.embedded_rows) == (2_000, 500)
    assert read_output(tmp_path / "out").column("id").to_pylist() == list(range(2_500))


def test_a_rerun_with_another_model_is_refused(
    tmp_path: Path, jsonl: tuple[Path, list[str]]
) -> None:
    path, _ = jsonl
    embed_file(path, tmp_path / "out", "fake:16", part_rows=1_000)
    with pytest.raises(ConfigurationError, match="another model"):
        embed_file(path, tmp_path / "out", "fake:8", part_rows=1_000)


def test_a_null_text_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [{"text": f"t{i}"} for i in range(1_500)]
    rows[1_234] = {"text": None}
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ConfigurationError, match=r"in\.jsonl:1235: has a null 'text'"):
        embed_file(path, tmp_path / "out", "fake:8", part_rows=1_000)


def test_cli_embeds_and_reports_in_one_line_on_error(
    tmp_path: Path, jsonl: tuple[Path, list[str]]
) -> None:
    path, _ = jsonl
    runner = CliRunner()
    ok = runner.invoke(cli, ["embed-dataset", str(path), str(tmp_path / "o"), "-m", "fake:8"])
    assert ok.exit_code == 0, ok.output
    assert "2500 rows in 1 part: 2500 embedded" in ok.output
    bad = runner.invoke(
        cli, ["embed-dataset", str(path), str(tmp_path / "p"), "-m", "fake:8", "--column", "body"]
    )
    assert bad.exit_code == 1
    assert "no column 'body' to embed; the data has: id, text" in bad.output
    assert "Traceback" not in bad.output


def test_a_keys_rate_budget_is_shared_by_the_actors_not_given_to_each() -> None:
    options = {"requests_per_minute": 3_000, "tokens_per_minute": 1_000_000, "dimensions": 8}
    plan = plan_actors(
        remote=True, uses_gpu=False, cluster={"CPU": 8.0}, options=options, actors=20
    )
    assert plan.actors == 20
    assert plan.options == {"dimensions": 8}  # no actor paces to the whole budget on its own
    assert plan.shared_budget == {"requests": 3_000.0, "tokens": 1_000_000.0}
    alone = plan_actors(
        remote=True, uses_gpu=False, cluster={"CPU": 8.0}, options=options, actors=1
    )
    assert (alone.options, alone.shared_budget) == (options, None)  # the engine's own pacer
    local = plan_actors(remote=False, uses_gpu=False, cluster={"CPU": 8.0}, options={})
    assert local.shared_budget is None


def test_actor_resources_follow_the_model_and_the_cluster() -> None:
    local = plan_actors(remote=False, uses_gpu=False, cluster={"CPU": 4.0}, options={})
    assert (local.actors, local.num_cpus, local.num_gpus) == (3, 1.0, 0.0)  # one CPU left
    gpu = plan_actors(remote=False, uses_gpu=True, cluster={"CPU": 16.0, "GPU": 2.0}, options={})
    assert (gpu.actors, gpu.num_gpus) == (2, 1.0)
    with pytest.raises(ConfigurationError, match="no GPU"):
        plan_actors(remote=False, uses_gpu=True, cluster={"CPU": 4.0}, options={})
