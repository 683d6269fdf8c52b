"""Quantized search benchmark (not a test): ``python bench/precision_bench.py [--corpus 4000]``.

all-MiniLM-L6-v2 (embedify-pack-minilm) on the local bench's retrieval set: each
standard-library docstring's first line is a query, the bodies (cut to 200 words) are the
corpus, padded with passages cut from the same docs to ``--corpus`` items. Each variant is a
real :class:`embedify.Collection` (the code users run), filled once; the float32 collection is
the baseline. Printed per variant: recall@10 against float32's top 10, the bytes held in memory
for search (and the ratio to float32), and the median query time over ``--repeats`` rounds
(query vectors come from the model's cache after the first round, so the time is the search;
warm-up round apart, variant order rotated each round).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import machine
from local_bench import docstrings

import embedify
from embedify.collection import Collection

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("float32", {"precision": "float32"}),
    ("int8, no rescoring", {"precision": "int8", "rescore_multiplier": 1}),
    ("int8 + rescoring x4", {"precision": "int8", "rescore_multiplier": 4}),
    ("binary, no rescoring", {"precision": "binary", "rescore_multiplier": 1}),
    ("binary + rescoring x4", {"precision": "binary", "rescore_multiplier": 4}),
    ("binary + rescoring x10", {"precision": "binary", "rescore_multiplier": 10}),
]


def retrieval_set(size: int, queries: int) -> tuple[list[str], list[str]]:
    docs = docstrings()
    corpus = [" ".join(body.split()[:200]) for _, body in docs]
    words = " ".join(corpus).split()
    rng = np.random.default_rng(0)
    while len(corpus) < size:
        length = int(rng.integers(40, 200))
        start = int(rng.integers(0, len(words) - length))
        corpus.append(" ".join(words[start : start + length]))
    picked = rng.choice(len(docs), size=min(queries, len(docs)), replace=False)
    return [docs[i][0] for i in sorted(picked)], corpus[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=4000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="local", help="a model name, e.g. local:/path")
    args = parser.parse_args()
    print(machine())
    queries, corpus = retrieval_set(args.corpus, args.queries)
    print(f"corpus: {len(corpus)} passages; {len(queries)} queries; k=10")
    with tempfile.TemporaryDirectory() as folder:
        model = embedify.get_model(args.model, cache=Path(folder) / "cache.db")
        print(f"model: {model.info.model_id}, {model.info.output_dimension} dimensions")
        started = time.perf_counter()
        model.embed(corpus)  # once: every collection below takes it from the cache
        print(f"corpus embedded in {time.perf_counter() - started:.1f} s")
        collections = {}
        for name, options in VARIANTS:
            collection = Collection(Path(folder) / f"{len(collections)}.db", model, **options)
            collection.upsert(ids=[str(i) for i in range(len(corpus))], texts=corpus)
            collections[name] = collection
        hits: dict[str, list[list[str]]] = {}
        times: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
        for round_ in range(args.repeats + 1):  # round 0: warm-up (and the query cache)
            order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
            for name, _ in order:
                started = time.perf_counter()
                found = [[hit.id for hit in collections[name].query(q, k=10)] for q in queries]
                if round_:
                    times[name].append((time.perf_counter() - started) / len(queries))
                hits[name] = found
        baseline = hits["float32"]
        base_bytes = collections["float32"].index_bytes
        print()
        print("| variant | recall@10 | memory for search | vs float32 | query (median) |")
        print("|---|---|---|---|---|")
        for name, _ in VARIANTS:
            recall = np.mean(
                [len(set(a) & set(b)) / 10 for a, b in zip(hits[name], baseline, strict=True)]
            )
            size = collections[name].index_bytes
            print(
                f"| {name} | {recall:.3f} | {size / 1e6:.2f} MB | 1/{base_bytes / size:.0f} | "
                f"{statistics.median(times[name]) * 1e3:.2f} ms |"
            )


if __name__ == "__main__":
    main()
