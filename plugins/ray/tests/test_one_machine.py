"""embed-dataset on one machine: pyarrow only (Ray is the cluster extra), progress that moves
while a part runs, and every Arrow text layout accepted."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embedify_ray import files
from embedify_ray.files import chunk_rows, embed_file
from embedify_ray.progress import (
    LOG_INTERVAL,
    TERMINAL_INTERVAL,
    Progress,
    ProgressReporter,
    due,
    progress_line,
)

from embedify import get_model
from embedify.cli import cli

# Runs the embedify CLI with `ray` (and its submodules) impossible to import, as in a
# virtualenv where embedify-ray was installed without its cluster extra.
WITHOUT_RAY = """
import sys


class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoRay())
from embedify.cli import cli

cli.main(sys.argv[1:], prog_name="embedify")
"""


def write_input(folder: Path, rows: int) -> Path:
    path = folder / "in.jsonl"
    path.write_text("".join(f'{{"text": "passage {i}"}}\n' for i in range(rows)))
    return path


def embedify_without_ray(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, *args], capture_output=True, text=True, timeout=300
    )


def test_one_machine_never_imports_ray(tmp_path: Path) -> None:
    source = write_input(tmp_path, 50)
    check = (
        "import sys\n"
        "from embedify.cli import cli\n"
        f"cli.main(['embed-dataset', {str(source)!r}, {str(tmp_path / 'out')!r}, '-m', 'fake:8'],"
        " standalone_mode=False)\n"
        "loaded = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not loaded, loaded\n"
    )
    finished = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 1


def test_one_machine_works_without_ray_installed(tmp_path: Path) -> None:
    source = write_input(tmp_path, 50)
    finished = embedify_without_ray(
        "embed-dataset", str(source), str(tmp_path / "out"), "-m", "fake:8"
    )
    assert finished.returncode == 0, finished.stderr
    assert "50 rows in 1 part: 50 embedded" in finished.stdout


def test_ray_without_ray_installed_says_the_one_install_command(tmp_path: Path) -> None:
    source = write_input(tmp_path, 50)
    finished = embedify_without_ray(
        "embed-dataset", str(source), str(tmp_path / "out"), "-m", "fake:8", "--ray"
    )
    assert finished.returncode == 1, finished.stderr
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert "pip install './plugins/ray[cluster]'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_actors_without_ray_is_a_usage_error(tmp_path: Path) -> None:
    source = write_input(tmp_path, 50)
    finished = embedify_without_ray(
        "embed-dataset", str(source), str(tmp_path / "out"), "-m", "fake:8", "--actors", "2"
    )
    assert finished.returncode == 2, finished.stderr
    assert "add --ray" in finished.stderr


# -- progress ----------------------------------------------------------------------------------


def test_a_line_shows_rows_rate_and_time_left() -> None:
    progress = Progress(total=10_000, started=100.0).advanced(embedded=4_500)
    assert progress_line(progress, now=110.0) == (
        "embedding: 4,500/10,000 rows (45%), 450 rows/s, 0:00:12 left"
    )
    assert progress_line(Progress(total=10, started=0.0), now=0.0) == "embedding: 0/10 rows (0%)"


def test_rows_already_written_count_as_done_but_not_in_the_rate() -> None:
    resumed = Progress(total=10_000, started=0.0).advanced(skipped=9_000).advanced(embedded=100)
    assert progress_line(resumed, now=1.0) == (
        "embedding: 9,100/10,000 rows (91%), 100 rows/s, 0:00:09 left"
    )


def test_a_line_is_due_first_then_once_per_interval_and_at_the_end() -> None:
    shown = Progress(total=100, started=0.0, done=10, shown_at=5.0)
    assert due(Progress(total=100, started=0.0), now=0.0, interval=30)
    assert not due(shown, now=34.9, interval=30)
    assert due(shown, now=35.0, interval=30)
    assert due(shown.advanced(embedded=90), now=6.0, interval=30)  # the last row


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_a_line_per_interval_and_the_last() -> None:
    clock, log = FakeClock(), io.StringIO()
    reporter = ProgressReporter(3_000, stream=log, clock=clock)
    for _ in range(30):
        clock.now += LOG_INTERVAL / 10
        reporter.update(embedded=100)
    reporter.close()
    lines = log.getvalue().splitlines()
    assert lines == [
        "embedding: 100/3,000 rows (3%), 33 rows/s, 0:01:27 left",
        "embedding: 1,100/3,000 rows (36%), 33 rows/s, 0:00:57 left",
        "embedding: 2,100/3,000 rows (70%), 33 rows/s, 0:00:27 left",
        "embedding: 3,000/3,000 rows (100%), 33 rows/s, 0:00:00 left",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_redrawn_twice_a_second() -> None:
    clock, screen = FakeClock(), Terminal()
    reporter = ProgressReporter(1_000, stream=screen, clock=clock)
    for _ in range(10):
        clock.now += TERMINAL_INTERVAL / 2
        reporter.update(embedded=100)
    reporter.close()
    frames = screen.getvalue().split("\r")[1:]
    assert len(frames) == 6  # the first, one per interval after it, and the last row
    assert frames[-1] == "embedding: 1,000/1,000 rows (100%), 400 rows/s, 0:00:00 left\033[K\n"


def test_progress_moves_while_a_part_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[dict[str, int]] = []

    class Recording(ProgressReporter):
        def update(self, **rows: Any) -> None:
            updates.append(rows)
            super().update(**rows)

    monkeypatch.setattr(files, "ProgressReporter", Recording)
    source = write_input(tmp_path, 2_500)
    embed_file(source, tmp_path / "out", "fake:8", part_rows=2_500, show_progress=True)
    assert updates == [{"embedded": 1_024}, {"embedded": 1_024}, {"embedded": 452}]
    updates.clear()
    embed_file(source, tmp_path / "out", "fake:8", part_rows=2_500, show_progress=True)
    assert updates == [{"skipped": 2_500}]  # a rerun: the part is already written


def test_a_call_holds_at_least_a_wave_of_requests() -> None:
    assert chunk_rows(10_000, inputs_per_request=64, concurrency=1) == 1_024  # local
    assert chunk_rows(10_000, inputs_per_request=2_048, concurrency=16) == 10_000  # OpenAI
    assert chunk_rows(500, inputs_per_request=64, concurrency=1) == 500


# -- text layouts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [pa.string(), pa.large_string(), pa.string_view(), pa.dictionary(pa.int32(), pa.string())],
)
def test_every_arrow_text_layout_is_embedded(tmp_path: Path, kind: pa.DataType) -> None:
    corpus = [f"passage {i} about {i % 4}" for i in range(1_500)]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": pa.array(corpus).cast(kind)}), source)
    assert pq.read_schema(source).field("text").type == kind  # what a reader gets back
    embed_file(source, tmp_path / "out", "fake:16", part_rows=1_000)
    written = pa.concat_tables(
        pq.read_table(part) for part in sorted((tmp_path / "out").glob("part-*.parquet"))
    )
    assert written.column("text").to_pylist() == corpus
    flat = written.column("embedding").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(flat.reshape(1_500, 16), get_model("fake:16").embed(corpus))


# -- exit status (docs/cli.md's table) -------------------------------------------------------


def status(*args: str) -> int:
    return CliRunner().invoke(cli, ["embed-dataset", *args]).exit_code


def test_exit_status_0_1_and_2(tmp_path: Path) -> None:
    source = write_input(tmp_path, 50)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"text": "fine"}\nnot json\n')
    assert status(str(source), str(tmp_path / "ok"), "-m", "fake:8") == 0
    assert status(str(damaged), str(tmp_path / "bad"), "-m", "fake:8") == 1  # the work failed
    for wrong in (
        ["-m", "zebra:stripes"],  # no such provider
        ["-m", "fake:8", "-o", "dimesions=4"],  # no such option
        ["-m", "fake:8", "--part-rows", "0"],
        ["-m", "fake:8", "--actors", "2"],  # without --ray
    ):
        assert status(str(source), str(tmp_path / "usage"), *wrong) == 2, wrong
    assert not (tmp_path / "usage").exists()


def test_ctrl_c_is_130_and_a_rerun_finishes_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_input(tmp_path, 3_000)
    write_part = files._write_part

    def interrupted_after_the_first(output: Path, index: int, table: pa.Table) -> None:
        if index > 0:
            raise KeyboardInterrupt
        write_part(output, index, table)

    monkeypatch.setattr(files, "_write_part", interrupted_after_the_first)
    out = str(tmp_path / "out")
    assert status(str(source), out, "-m", "fake:8", "--part-rows", "1000") == 130
    monkeypatch.setattr(files, "_write_part", write_part)
    rerun = CliRunner().invoke(
        cli, ["embed-dataset", str(source), out, "-m", "fake:8", "--part-rows", "1000"]
    )
    assert rerun.exit_code == 0
    assert "3000 rows in 3 parts: 2000 embedded, 1000 already written" in rerun.output
