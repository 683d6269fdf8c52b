"""Rows/s of `embed-dataset`: in-process vs Ray with 1 and 2 actors, and peak memory when a
1,000,000-row file is streamed.

    python bench/ray_bench.py [--model local] [--rows 4000] [--repeats 3]

Each runner embeds the same Parquet file into a fresh folder. Ray's cluster start is timed
apart (it is paid once per job, not per row); each timed run starts its actors afresh, so
model loading is inside the time, as a user's job pays it. Runner order rotates between
repeats; the median is reported. The streaming line uses a model that returns zeros, so what it
measures is the file pipeline's memory, not a model's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from embedify_ray import embed_file

from embedify import Capabilities, EmbeddingModel, Limits
from embedify.model import Role, Vectors


def cpu() -> str:
    flags: set[str] = set()
    name = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    shown = sorted(f for f in flags if f.startswith(("avx512", "avx2", "amx")))
    return f"{name}; {' '.join(shown) or 'no AVX2/AVX-512'}"


def corpus(rows: int) -> pa.Table:
    words = "the a engine rate limit cache vector model token batch query passage".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 120)))) for _ in range(rows)]
    return pa.table({"id": np.arange(rows), "text": texts})


class Zeros(EmbeddingModel):
    """Free vectors: isolates the file pipeline's memory from a model's."""

    provider = "bench-zeros"
    default_model_id = "384"
    capabilities = Capabilities(dimension=384, limits=Limits(max_inputs_per_request=2048))

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        vectors = np.zeros((len(texts), 384), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors


def timed(source: Path, model: str, ray: str | None, actors: int | None, part_rows: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        report = embed_file(
            source, Path(out) / "o", model, ray_address=ray, actors=actors, part_rows=part_rows
        )
    return report.embedded_rows / report.seconds


def stream(rows: int) -> None:
    """Run in its own process, so its peak memory is the pipeline's alone."""
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.jsonl"
        with big.open("w") as out:
            for i in range(rows):
                out.write(f'{{"id": {i}, "text": "row {i} of a large file to embed"}}\n')
        report = embed_file(big, Path(folder) / "out", Zeros(), part_rows=10_000)
        size = big.stat().st_size / 2**20
        print(f"streaming {rows} JSONL rows ({size:.0f} MB file): {report.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local")
    parser.add_argument("--rows", type=int, default=4_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-rows", type=int, default=1_000_000)
    parser.add_argument("--stream-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_only:
        stream(args.stream_rows)
        return
    print(f"CPU: {cpu()}; {len(os.sched_getaffinity(0))} cores")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.parquet"
        pq.write_table(corpus(args.rows), source)
        import ray

        started = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        print(f"ray.init: {time.perf_counter() - started:.1f} s (once per job, not in rows/s)")
        runners: list[tuple[str, dict[str, Any]]] = [
            ("in-process engine", {"ray": None, "actors": None}),
            ("Ray, 1 actor", {"ray": "local", "actors": 1}),
            ("Ray, 2 actors", {"ray": "local", "actors": 2}),
        ]
        part_rows = max(100, args.rows // 8)  # enough parts to keep two actors busy
        timed(source, args.model, None, None, part_rows)  # warm-up: files cached, graph built
        rates: dict[str, list[float]] = {name: [] for name, _ in runners}
        for repeat in range(args.repeats):
            shift = repeat % len(runners)
            for name, kwargs in runners[shift:] + runners[:shift]:
                rates[name].append(timed(source, args.model, part_rows=part_rows, **kwargs))
        ray.shutdown()
    base = statistics.median(rates["in-process engine"])
    print(f"\n{args.rows} rows, model {args.model}, median of {args.repeats}:")
    print("| runner | rows/s | vs in-process |\n|---|---|---|")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:.0f} | {rate / base:.2f}x |")
    command = [sys.executable, __file__, "--stream-only", "--stream-rows", str(args.stream_rows)]
    print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
