"""kill -9 in the middle of `embed_file`, then the same command again: every input row is in
the output exactly once, with its own vector and all its columns, and nothing half-written is
left. The job runs in a real process killed with SIGKILL, at several points."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedify import get_model

pytestmark = pytest.mark.faults

ROWS = 1_200
PART_ROWS = 200
JOB = """
import sys, time
from embedify.fake import FakeEmbeddingModel
from embedify_ray.files import embed_file

class Slow(FakeEmbeddingModel):
    def embed_batch(self, texts, role):
        time.sleep(float(sys.argv[3]))
        return super().embed_batch(texts, role)

embed_file(sys.argv[1], sys.argv[2], Slow("16", batch_size=50, cache=False), part_rows=200)
"""


def job(tmp_path: Path, source: Path, out: Path, delay: float) -> subprocess.Popen[bytes]:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    command = [sys.executable, str(script), str(source), str(out), str(delay)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("parts_before_kill", [0, 1, 3])
def test_a_job_killed_anywhere_and_run_again_writes_each_row_once(
    tmp_path: Path, parts_before_kill: int
) -> None:
    source = tmp_path / "in.jsonl"
    rows = [
        {"id": i, "text": f"passage {i}"} | ({"note": f"n{i}"} if i % 7 else {})
        for i in range(ROWS)
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"

    first = job(tmp_path, source, out, delay=0.05)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < parts_before_kill or not out.exists():
        assert first.poll() is None, first.stderr.read() if first.stderr else b""
        assert time.monotonic() < deadline, "the job wrote no part in two minutes"
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert len(list(out.glob("part-*.parquet"))) < ROWS // PART_ROWS, "killed too late"

    again = job(tmp_path, source, out, delay=0)
    assert again.wait(timeout=300) == 0, again.stderr.read() if again.stderr else b""

    parts = sorted(out.glob("part-*.parquet"))
    table = pa.concat_tables(pq.read_table(part) for part in parts)
    assert table.column("id").to_pylist() == list(range(ROWS))
    assert table.column("note").to_pylist() == [row.get("note") for row in rows]
    vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    expected = get_model("fake:16", cache=False).embed([row["text"] for row in rows])
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-6)
    leftovers = [path.name for path in out.iterdir() if path.name.startswith(".")]
    assert not leftovers, f"half-written files left behind: {leftovers}"
