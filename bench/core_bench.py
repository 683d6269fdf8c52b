"""Core benchmarks (not tests): run `python bench/core_bench.py [--texts 20000]`.

(a) the engine against a loopback server with 150 ms latency per request, vs the ideal;
(b) the same under a 429 storm (every 10th request) and 2% 503s: correctness and cost;
(c) top-k over 1,000,000 x 384 vectors: embedify.top_k vs numpy's best vs a plain Python loop;
(d) `import embedify` time in a fresh interpreter, and which heavy modules it imported.

The server speaks the example Acme protocol with OpenAI-like limits (2048 inputs and 300,000
tokens per request). Needs the core and examples/embedify-acme installed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import subprocess
import sys
import time
from typing import Any

import numpy as np
from embedify_acme.model import AcmeEmbeddingModel
from embedify_acme.server import API_KEY, AcmeServer, vector_for

import embedify
from embedify.testing import LoopbackServer

LATENCY = 0.15
MAX_INPUTS = 2048
MAX_TOKENS = 300_000


class BenchModel(AcmeEmbeddingModel):
    limits = embedify.Limits(
        max_inputs_per_request=MAX_INPUTS,
        max_tokens_per_request=MAX_TOKENS,
        max_tokens_per_input=8192,
    )


def varied_texts(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
    return [
        f"doc {i}: " + " ".join(rng.choice(words, size=int(rng.integers(10, 300))))
        for i in range(count)
    ]


def _serve(faults: dict[str, Any], urls: Any) -> None:
    behaviour = AcmeServer(
        latency=LATENCY, max_batch=MAX_INPUTS, max_tokens_per_input=10_000, **faults
    )
    with LoopbackServer(behaviour) as server:
        urls.put(server.url)
        time.sleep(3600)


async def _hand_tuned(url: str, texts: list[str], concurrency: int) -> np.ndarray:
    """The baseline: a careful hand-written client, one round of equal requests, no engine."""
    import httpx

    size = math.ceil(len(texts) / concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as c:
        bodies = [
            {"model": "acme-embed-mini", "inputs": texts[i : i + size], "input_type": "document"}
            for i in range(0, len(texts), size)
        ]
        responses = await asyncio.gather(*(c.post("/v1/embed", json=body) for body in bodies))
    rows = [np.asarray(r.json()["embeddings"], dtype=np.float32) for r in responses]
    return np.concatenate(rows)


def engine_run(
    texts: list[str], faults: dict[str, Any], concurrency: int, *, baseline: bool = False
) -> dict[str, Any]:
    """One job against a server in its own process (so it does not compete for our GIL)."""
    context = multiprocessing.get_context("spawn")
    urls = context.Queue()
    process = context.Process(target=_serve, args=(faults, urls), daemon=True)
    process.start()
    try:
        url = urls.get(timeout=60)
        if baseline:
            started = time.perf_counter()
            vectors = asyncio.run(_hand_tuned(url, texts, concurrency))
            return {"seconds": time.perf_counter() - started, "vectors": vectors}
        model = BenchModel(
            "acme-embed-mini",
            base_url=url,
            api_key=API_KEY,
            max_concurrency=concurrency,
            timeout=120,
        )
        started = time.perf_counter()
        result = model.embed_with_report(texts)
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
    sample = np.linspace(0, len(texts) - 1, 200).astype(int)
    expected = np.array([vector_for("document", texts[i], 64) for i in sample], dtype=np.float32)
    correct = bool(np.allclose(result.vectors[sample], expected, atol=1e-6))
    return {"seconds": elapsed, "report": result.report, "correct": correct}


def bench_engine(count: int, concurrency: int) -> None:
    texts = varied_texts(count)
    tokens = sum(embedify.estimate_tokens(t) for t in texts)
    fewest = max(math.ceil(count / MAX_INPUTS), math.ceil(tokens / MAX_TOKENS))
    ideal = LATENCY * max(1, math.ceil(fewest / concurrency))
    sequential_ideal = LATENCY * fewest
    print(
        f"(a) engine: {count} texts, ~{tokens} estimated tokens, {concurrency} in flight, "
        f"{LATENCY * 1000:.0f} ms per request"
    )
    print(
        f"    fewest valid requests {fewest}; ideal wall time {ideal:.2f} s "
        f"(one round of <= {concurrency} requests); those {fewest} one after another "
        f"{sequential_ideal:.2f} s"
    )
    hand = engine_run(texts, {}, concurrency, baseline=True)
    clean = engine_run(texts, {}, concurrency)
    report = clean["report"]
    print(
        f"    hand-tuned httpx client (one round of {concurrency} equal requests, no retries, "
        f"no limits check): {hand['seconds']:.2f} s = {hand['seconds'] / ideal:.2f}x ideal"
    )
    print(
        f"    embedify: {clean['seconds']:.2f} s = {clean['seconds'] / ideal:.2f}x ideal, "
        f"{clean['seconds'] / hand['seconds']:.2f}x the hand-tuned client, "
        f"{report.requests} requests, correct={clean['correct']}"
    )
    faults = {"rate_limit_every": 10, "retry_after": "0.2", "error_rate": 0.02, "seed": 1}
    stormy = engine_run(texts, faults, concurrency)
    report = stormy["report"]
    print(
        f"(b) 429 every 10th request (Retry-After 0.2 s) + 2% 503: {stormy['seconds']:.2f} s "
        f"({stormy['seconds'] / clean['seconds']:.2f}x the clean run), "
        f"{report.rate_limited} x 429, {report.retries - report.rate_limited} other retries, "
        f"{report.failed} failed, correct={stormy['correct']}"
    )


def bench_top_k(rows: int, dimension: int = 384, k: int = 10) -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((rows, dimension), dtype=np.float32)
    query = rng.standard_normal(dimension, dtype=np.float32)
    started = time.perf_counter()
    indices, _ = embedify.top_k(query, corpus, k)
    ours = time.perf_counter() - started

    started = time.perf_counter()
    normalized = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    scores = normalized @ (query / np.linalg.norm(query))
    best = np.argpartition(-scores, k)[:k]
    best = best[np.argsort(-scores[best])]
    numpy_best = time.perf_counter() - started
    assert best.tolist() == indices.tolist()

    subset = 20_000
    started = time.perf_counter()
    query_list = query.tolist()
    query_norm = math.sqrt(sum(x * x for x in query_list))
    loop_scores = []
    for row in corpus[:subset].tolist():
        dot = sum(a * b for a, b in zip(row, query_list))
        loop_scores.append(dot / (math.sqrt(sum(a * a for a in row)) * query_norm))
    sorted(range(subset), key=loop_scores.__getitem__, reverse=True)[:k]
    python_loop = (time.perf_counter() - started) * rows / subset
    print(
        f"(c) top-{k} over {rows:,} x {dimension}: embedify {ours * 1000:.0f} ms; numpy full "
        f"matrix + argpartition {numpy_best * 1000:.0f} ms ({numpy_best / ours:.2f}x ours); "
        f"plain Python loop ~{python_loop:.0f} s (timed on {subset:,} rows, scaled; "
        f"{python_loop / ours:.0f}x ours)"
    )


def bench_import(repeats: int = 7) -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import embedify; "
        "e = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'cohere', 'onnxruntime', "
        "'numpy', 'pydantic') if m in sys.modules]; print(e, ','.join(heavy))"
    )
    times = []
    heavy = ""
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        times.append(float(out[0]))
        heavy = out[1] if len(out) > 1 else "none"
    baseline = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - started)
    print(
        f"(d) import embedify: median {sorted(times)[len(times) // 2] * 1000:.1f} ms "
        f"(target < 100 ms); heavy modules imported: {heavy}; "
        f"bare interpreter start {min(baseline) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    bench_engine(args.texts, args.concurrency)
    bench_top_k(args.rows)
    bench_import()


if __name__ == "__main__":
    main()
