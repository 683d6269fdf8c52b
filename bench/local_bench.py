"""Local-model benchmark (not a test): ``python bench/local_bench.py [--repeats 3]``.

all-MiniLM-L6-v2 (embedify-pack-minilm) on a users' mix of real English (standard-library
docstrings): 20% short queries (<= 16 words), 50% passages of 40-120 words, 30% of 150-250
words. Each length class is timed apart (the engine sorts by length, so a mix is its classes
one after the other); the mix is the sum. Printed, from one run:

- the CPU model and its SIMD flags (nothing is picked by hand);
- ONNX Runtime's fp32 MatMul rate at the model's shapes (the peak the runners are held to),
  measured once per round among the runners, median;
- per runner and length class: texts/s, the ratio to sentence-transformers fp32, and the share
  of the peak reached by useful FLOPs (real tokens only, no padding);
- for the fast paths: top-10 neighbour overlap with fp32 on a retrieval set (each docstring's
  first line as the query, the passages as the corpus) and the lowest cosine to fp32.

Warm-up apart, median of ``--repeats`` timed runs, runner order rotated each round. Runners
share one process and its cores (threads left to each library's default).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
STDLIB = (
    "argparse asyncio collections concurrent.futures csv datetime decimal email functools "
    "http.client http.server inspect io json logging multiprocessing os pathlib pickle random re "
    "shutil socket sqlite3 statistics string subprocess tarfile threading typing unittest "
    "urllib.request uuid xml.etree.ElementTree zipfile"
).split()
CLASSES = {"query": (3, 16), "passage-80": (40, 120), "passage-200": (150, 250)}
SHARES = {"query": 0.2, "passage-80": 0.5, "passage-200": 0.3}
PEAK = "fp32 MatMul peak"
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_description() -> str:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.*)", info).group(1)  # type: ignore[union-attr]
        flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split())  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    present = " ".join(flag for flag in FLAGS if flag in flags) or "unknown"
    return f"{model}, {os.cpu_count()} logical cores; flags: {present}"


def docstrings() -> list[tuple[str, str]]:
    """(first line, body) of standard-library docstrings: real queries and real passages."""
    found: dict[str, str] = {}
    for name in STDLIB:
        module = importlib.import_module(name)
        for _, member in [("", module), *inspect.getmembers(module)]:
            doc = inspect.getdoc(member) or ""
            first, _, body = doc.partition("\n")
            if len(first.split()) >= 4 and len(body.split()) >= 40:
                found.setdefault(first.strip(), " ".join(body.split()))
    return sorted(found.items())


def workload(total: int) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Texts per length class, and a retrieval set (queries, passages) from the same docs."""
    docs = docstrings()
    words = " ".join(body for _, body in docs).split()
    rng = np.random.default_rng(0)
    classes: dict[str, list[str]] = {}
    for name, (low, high) in CLASSES.items():
        count = round(total * SHARES[name])
        if name == "query":
            pool = [first for first, _ in docs if low <= len(first.split()) <= high]
            classes[name] = [pool[i % len(pool)] for i in range(count)]
            continue
        texts = []
        for _ in range(count):
            length = int(rng.integers(low, high + 1))
            start = int(rng.integers(0, len(words) - length))
            texts.append(" ".join(words[start : start + length]))
        classes[name] = texts
    retrieval = docs[: min(len(docs), 400)]
    return classes, [q for q, _ in retrieval], [" ".join(b.split()[:200]) for _, b in retrieval]


def matmul_peak(hidden: int, intermediate: int, tokens: int, repeats: int = 5) -> float:
    """ONNX Runtime's fp32 MatMul GFLOP/s at the encoder's GEMM shapes (the best of them)."""
    import onnxruntime
    from embedify_huggingface import onnx_file

    best = 0.0
    for inner, outer in [(hidden, 3 * hidden), (hidden, intermediate), (intermediate, hidden)]:
        weight = np.random.default_rng(0).standard_normal((inner, outer)).astype(np.float32)
        with tempfile.TemporaryDirectory() as scratch:
            file = Path(scratch) / "matmul.onnx"
            onnx_file.save_model(
                file,
                graph_name="matmul",
                nodes=[onnx_file.node("MatMul", ["x", "w"], ["y"], "matmul")],
                initializers=[("w", weight)],
                inputs=[onnx_file.value_info("x", onnx_file.FLOAT, ["rows", inner])],
                outputs=[onnx_file.value_info("y", onnx_file.FLOAT, ["rows", outer])],
                opsets={"": 17},
                producer="bench",
            )
            session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).standard_normal((tokens, inner)).astype(np.float32)
        session.run(None, {"x": x})
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(10):
                session.run(None, {"x": x})
            times.append((time.perf_counter() - started) / 10)
        best = max(best, 2 * tokens * inner * outer / statistics.median(times) / 1e9)
    return best


def useful_gflop(token_counts: list[int], layers: int, hidden: int, intermediate: int) -> float:
    """Encoder FLOPs on real tokens: projections, feed-forward, and attention over n tokens."""
    total = 0
    for n in token_counts:
        total += layers * (2 * n * (4 * hidden * hidden + 2 * hidden * intermediate))
        total += layers * 4 * n * n * hidden
    return total / 1e9


def runners(folder: Path) -> dict[str, Callable[[list[str]], Array]]:
    import embedify

    made: dict[str, Callable[[list[str]], Array]] = {}
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(folder), device="cpu")
        made["sentence-transformers fp32"] = lambda texts: st.encode(texts, batch_size=32)
    except ImportError:
        print("sentence-transformers is not installed: no baseline ratio")

    def local(**options: Any) -> Callable[[list[str]], Array]:
        model = embedify.get_model(f"local:{folder}", cache=False, **options)
        return lambda texts: model.embed(texts)

    made["embedify onnx fp32, 16384-token batches"] = local(max_tokens_per_batch=16_384)
    made["embedify onnx fp32 (default)"] = local()
    made["embedify onnx int8 (fast path)"] = local(quantize="int8")
    if "avx512_bf16" in cpu_description() or "amx_bf16" in cpu_description():
        made["embedify torch bf16 (fast path)"] = local(backend="torch", dtype="bfloat16")
    return made


def overlap_at_10(queries: Array, passages: Array, ref_q: Array, ref_p: Array) -> float:
    ours = np.argsort(-(queries @ passages.T), axis=1)[:, :10]
    theirs = np.argsort(-(ref_q @ ref_p.T), axis=1)[:, :10]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ours, theirs)]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=300, help="texts in the mix")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from embedify_pack_minilm import model_folder

    import embedify

    folder = model_folder()
    print(cpu_description())
    classes, queries, passages = workload(args.texts)
    counter = embedify.get_model(f"local:{folder}")
    tokens = {name: counter.count_tokens(texts) for name, texts in classes.items()}
    tokens = {name: [min(n, 256) for n in counts] for name, counts in tokens.items()}
    flop = {name: useful_gflop(counts, 6, 384, 1536) for name, counts in tokens.items()}
    for name, counts in tokens.items():
        print(f"  {name}: {len(counts)} texts, {np.mean(counts):.0f} tokens mean")

    made = runners(folder)
    names = list(made)
    fp32 = made.get("sentence-transformers fp32", made["embedify onnx fp32 (default)"])
    ref_q, ref_p = fp32(queries), fp32(passages)
    quality = {}
    for name, run in made.items():
        q, p = run(queries), run(passages)  # also the warm-up
        cosine = (p * ref_p).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(ref_p, axis=1)
        quality[name] = (overlap_at_10(q, p, ref_q, ref_p), float(cosine.min()))
        for texts in classes.values():
            run(texts[:8])
    seconds: dict[tuple[str, str], list[float]] = {}
    peaks = []
    turns = [*names, PEAK]
    for round_ in range(args.repeats):
        shift = round_ % len(turns)
        for name in turns[shift:] + turns[:shift]:
            if name == PEAK:  # measured in every round, so it drifts with the machine's load
                peaks.append(matmul_peak(384, 1536, 1024))
                continue
            for cls, texts in classes.items():
                started = time.perf_counter()
                made[name](texts)
                seconds.setdefault((name, cls), []).append(time.perf_counter() - started)

    baseline = names[0]
    peak = statistics.median(peaks)
    print(
        f"ONNX Runtime fp32 MatMul peak at MiniLM's shapes (1,024 rows): {peak:.0f} GFLOP/s "
        f"(median of {', '.join(f'{p:.0f}' for p in peaks)}, one per round)"
    )
    print(
        f"\n{args.repeats} runs each, median; order rotated. Shared 2-core machine: noisy.\n"
        f"{'runner':44s} {'class':12s} {'texts/s':>8s} {'vs ST':>6s} {'% peak':>7s} "
        f"{'top10':>6s} {'cos min':>8s}"
    )
    for name in names:
        overlap, cos_min = quality[name]
        total_time = 0.0
        for cls, texts in [*classes.items(), ("mix", [])]:
            if cls == "mix":
                time_ = total_time
                count = sum(len(t) for t in classes.values())
                gflop = sum(flop.values())
                base = sum(statistics.median(seconds[(baseline, c)]) for c in classes)
            else:
                time_ = statistics.median(seconds[(name, cls)])
                total_time += time_
                count, gflop = len(texts), flop[cls]
                base = statistics.median(seconds[(baseline, cls)])
            print(
                f"{name:44s} {cls:12s} {count / time_:8.1f} {base / time_:6.2f} "
                f"{100 * gflop / time_ / peak:6.1f}% {overlap:6.3f} {cos_min:8.5f}"
            )


if __name__ == "__main__":
    main()
