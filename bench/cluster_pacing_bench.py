"""Ray actors against one tokens-per-minute limit: rows lost, 429s, and wall time against the
bound the server's own token count sets.

    python bench/cluster_pacing_bench.py [--tpm 120000] [--bound 40] [--actors 4 1]

The OpenAI loopback server (``embedify_openai.testing``) limits the key to ``--tpm`` tokens a
minute, as OpenAI does: a bucket that starts full (a key unused for a minute) and refills at
tpm/60 a second. The corpus holds about ``tpm`` + ``bound`` x tpm/60 of the server's tokens, so
no client can finish sooner than ``bound`` seconds after its first request:

    bound = (tokens the server charged - tpm) / (tpm / 60)

Each run embeds the corpus with ``embed-dataset --ray`` on a local Ray cluster (cluster start
and actor start not timed: the wall is from the first request the server sees to the last),
then checks every row against the server's vector for its text. ``--unshared`` adds a run with
4 actors that each pace on their own (what embed-dataset did before the shared budget).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from embedify_openai.testing import FakeOpenAI, count_tokens, serve_fake_openai, vector_for
from embedify_ray import embed_file

from embedify.testing import Request, Response

MODEL = "text-embedding-3-small"
DIMENSIONS = 64


def cpu() -> str:
    name = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            break
    return f"{name}; {len(os.sched_getaffinity(0))} cores"


def corpus(tokens: int) -> list[str]:
    """Distinct texts of 5 to 40 of the server's tokens, about ``tokens`` in all."""
    words = "the a engine rate limit cache vector model token batch query passage".split()
    rng = np.random.default_rng(0)
    texts: list[str] = []
    total = 0
    while total < tokens:
        text = f"row {len(texts)} " + " ".join(rng.choice(words, size=int(rng.integers(3, 38))))
        texts.append(text)
        total += count_tokens(text)
    return texts


class TimedFake(FakeOpenAI):
    """The fake, noting when it saw the first request and answered the last."""

    first: float | None = None
    last = 0.0

    def __call__(self, request: Request) -> Response:
        self.first = self.first or time.monotonic()
        response = super().__call__(request)
        self.last = time.monotonic()
        return response


def run(texts: list[str], tpm: int, actors: int, share: bool) -> dict[str, Any]:
    fake = TimedFake(tokens_per_minute=tpm)
    fake.precompute(texts, MODEL, DIMENSIONS)
    with tempfile.TemporaryDirectory() as folder, serve_fake_openai(fake) as server:
        source = Path(folder) / "in.parquet"
        pq.write_table(pa.table({"id": np.arange(len(texts)), "text": texts}), source)
        unshared = mock.patch("embedify_ray.dataset.keeper_for", return_value=None)
        with contextlib.nullcontext() if share else unshared:
            embed_file(
                source,
                Path(folder) / "out",
                f"openai:{MODEL}",
                ray_address="local",
                actors=actors,
                part_rows=2_000,
                base_url=server.base_url,
                api_key=server.api_key,
                dimensions=DIMENSIONS,
            )
        written = pa.concat_tables(
            pq.read_table(p) for p in sorted((Path(folder) / "out").glob("part-*.parquet"))
        )
    ids = written.column("id").to_pylist()
    vectors = written.column("embedding").combine_chunks().flatten().to_numpy()
    vectors = vectors.reshape(len(ids), DIMENSIONS)
    wrong = sum(
        not np.allclose(vector, vector_for(MODEL, texts[i], DIMENSIONS), atol=1e-6)
        for i, vector in zip(ids, vectors)
    )
    answered = [entry for entry in fake.log if entry["path"].endswith("/embeddings")]
    admitted = [entry for entry in answered if entry["status"] == 200]
    charged = sum(count_tokens(text) for entry in admitted for text in entry["body"]["input"])
    return {
        "lost": len(texts) - len(set(ids)),
        "wrong": wrong,
        "requests": len(answered),
        "refused": sum(entry["status"] == 429 for entry in answered),
        "charged": charged,
        "wall": fake.last - (fake.first or fake.last),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tpm", type=int, default=120_000)
    parser.add_argument("--bound", type=float, default=40.0, help="seconds the server allows")
    parser.add_argument("--actors", type=int, nargs="+", default=[4, 1])
    parser.add_argument("--unshared", action="store_true", help="also 4 actors pacing alone")
    args = parser.parse_args()
    print(f"CPU: {cpu()}")
    texts = corpus(int(args.tpm + args.bound * args.tpm / 60))
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    runs = [(f"{n} actor{'s' * (n > 1)}", n, True) for n in args.actors]
    if args.unshared:
        runs.append(("4 actors, each pacing alone", 4, False))
    print(f"{len(texts)} rows; TPM {args.tpm}\n")
    print(
        "| run | rows lost / wrong | requests | 429s | server tokens | bound | wall | wall/bound |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, actors, share in runs:
        result = run(texts, args.tpm, actors, share)
        bound = max(0.0, result["charged"] - args.tpm) / (args.tpm / 60)
        print(
            f"| {name} | {result['lost']} / {result['wrong']} | {result['requests']} | "
            f"{result['refused']} ({result['refused'] / result['requests']:.1%}) | "
            f"{result['charged']} | {bound:.1f} s | {result['wall']:.1f} s | "
            f"{result['wall'] / bound:.2f}x |"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
