"""`embed-dataset --via batch` against the OpenAI loopback fake: the same output as online, the
dry run, the end report, `embedify batches`, and kill -9 at each stage of a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embedify_openai.testing import (
    PAUSE_STAGES,
    FakeBatches,
    FakeOpenAI,
    FakeOpenAIServer,
    serve_fake_openai,
    vector_for,
)

from embedify.cli import cli

MODEL = "text-embedding-3-small"
ROWS = 25


def write_input(path: Path) -> list[str]:
    texts = [f"row {i} is about topic {i % 7}" for i in range(ROWS)]
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    return texts


def model_args(server: FakeOpenAIServer) -> list[str]:
    return [
        "-m",
        f"openai:{MODEL}",
        "-o",
        f"base_url={server.base_url}",
        "-o",
        f"api_key={server.api_key}",
    ]


def read(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("part-*.parquet")))


def check_output(folder: Path, texts: list[str]) -> None:
    table = read(folder)
    assert table.column("id").to_pylist() == list(range(ROWS))
    vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, [vector_for(MODEL, t) for t in texts], atol=1e-7)


def test_batch_output_is_the_online_output(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    with serve_fake_openai() as server:
        common = [str(source), "--part-rows", "10", *model_args(server)]
        runner = CliRunner()
        batch = runner.invoke(
            cli,
            [
                "embed-dataset",
                *common[:1],
                str(tmp_path / "b"),
                *common[1:],
                "--via",
                "batch",
                "--poll-interval",
                "0",
            ],
        )
        assert batch.exit_code == 0, batch.output
        online = runner.invoke(
            cli, ["embed-dataset", *common[:1], str(tmp_path / "o"), *common[1:]]
        )
        assert online.exit_code == 0, online.output
    parts = sorted(p.name for p in (tmp_path / "b").glob("part-*.parquet"))
    assert parts == sorted(p.name for p in (tmp_path / "o").glob("part-*.parquet"))
    assert len(parts) == 3
    for name in parts:
        assert pq.read_table(tmp_path / "b" / name).equals(pq.read_table(tmp_path / "o" / name))
    assert "batch API: 25 rows," in batch.output and "1 batches, 0 requests retried" in batch.output
    assert "estimated cost $0.0" in batch.output and "saved $" in batch.output
    assert server.fake.batches.created == 1
    assert not (tmp_path / "b" / "_batch_results").exists()  # results go once parts are written


def test_failed_and_expired_requests_are_sent_again(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    texts = write_input(source)
    fake = FakeOpenAI(batches=FakeBatches(expire=1, fail_once=frozenset({"part-000000-rows-0-10"})))
    with serve_fake_openai(fake) as server:
        result = CliRunner().invoke(
            cli,
            [
                "embed-dataset",
                str(source),
                str(tmp_path / "b"),
                "--part-rows",
                "10",
                *model_args(server),
                "--via",
                "batch",
                "--poll-interval",
                "0",
            ],
        )
    assert result.exit_code == 0, result.output
    check_output(tmp_path / "b", texts)
    # three requests in one batch: the first (done before the batch expired) failed, the other
    # two expired; few inputs are left, so they go online
    assert "1 batches, 3 requests retried (3 online)" in result.output


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    with serve_fake_openai() as server:
        result = CliRunner().invoke(
            cli,
            [
                "embed-dataset",
                str(source),
                str(tmp_path / "b"),
                *model_args(server),
                "-o",
                "tokenizer=estimate",
                "--dry-run",
                "--price",
                "2",
                "1",
            ],
        )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "rows:        25"
    assert lines[1].startswith("tokens:      ") and lines[1].endswith("(estimated)")
    tokens = int(lines[1].split()[1].replace(",", ""))
    assert lines[2:4] == ["requests:    1", "batch files: 1 (one batch each)"]
    assert lines[4] == f"online:      ${tokens * 2 / 1e6:.4f}"
    assert server.fake.log == [] and not (tmp_path / "b").exists()


def test_batches_commands_list_status_and_cancel(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    with serve_fake_openai(FakeOpenAI(batches=FakeBatches(pause_at="poll"))) as server:
        out = tmp_path / "b"
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "embedify",
                "embed-dataset",
                str(source),
                str(out),
                *model_args(server),
                "--via",
                "batch",
                "--poll-interval",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert server.fake.batches.paused.wait(60), "the job never polled"
        finally:
            os.kill(job.pid, signal.SIGKILL)
            job.wait()
            server.fake.batches.release()
        server.fake.batches.advance_on_poll = False  # time stands still from here
        runner = CliRunner()
        listed = runner.invoke(cli, ["batches", "list", str(out), *model_args(server)])
        assert listed.exit_code == 0, listed.output
        assert "batch_000002  in_progress" in listed.output
        cancelled = runner.invoke(cli, ["batches", "cancel", str(out), *model_args(server)])
        assert cancelled.output.strip() == "batch_000002: cancelling"
        server.fake.batches.advance()
        status = runner.invoke(cli, ["batches", "status", str(out), *model_args(server)])
        assert status.output.startswith("1 batches (1 cancelled); 1 requests sent")
        empty = runner.invoke(cli, ["batches", "status", str(tmp_path), *model_args(server)])
        assert empty.exit_code == 2 and "holds no batch job" in empty.output


def test_a_model_without_a_batch_api_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    result = CliRunner().invoke(
        cli, ["embed-dataset", str(source), str(tmp_path / "o"), "-m", "fake:8", "--via", "batch"]
    )
    assert result.exit_code == 2
    assert "has no batch API" in result.output and "(openai)" in result.output
    assert not (tmp_path / "o").exists()


def run_job(source: Path, out: Path, server: FakeOpenAIServer) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "embedify",
        "embed-dataset",
        str(source),
        str(out),
        "--part-rows",
        "10",
        *model_args(server),
        "--via",
        "batch",
        "--poll-interval",
        "0",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("stage", PAUSE_STAGES)
def test_kill_9_at_any_stage_then_rerun_submits_nothing_twice(tmp_path: Path, stage: str) -> None:
    source = tmp_path / "in.jsonl"
    texts = write_input(source)
    out = tmp_path / "out"
    fake = FakeOpenAI(batches=FakeBatches(pause_at=stage))
    with serve_fake_openai(fake) as server:
        first = run_job(source, out, server)
        try:
            assert fake.batches.paused.wait(60), f"the job never reached {stage}"
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        assert not list(out.glob("part-*.parquet"))
        fake.batches.pause_at = None
        fake.batches.release()
        again = run_job(source, out, server)
        assert again.wait(timeout=120) == 0, again.stderr.read() if again.stderr else b""
        assert fake.batches.created == 1, "a batch was submitted twice"
    check_output(out, texts)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
