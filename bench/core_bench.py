"""Core benchmarks (not tests): ``python bench/core_bench.py [--only a,b,c,d]``.

(a) engine overhead: 20,000 texts through the example Acme provider (httpx, no SDK) against a
    loopback server that is not the bottleneck (answers precomputed as JSON bytes), whose time
    per request is 150 ms + 0.01 ms per token with 100 requests served at once, and OpenAI-like
    limits (2048 inputs, 300,000 tokens per request). embedify with no options and with 100 in
    flight, vs a hand-tuned httpx client running the ideal plan, vs the ideal schedule itself
    (the best request size's server time). Target: embedify <= 1.3x the ideal schedule.
(b) the same job under a 429 storm (every 10th request, Retry-After 0.2 s) and 2% 503s.
(c) top-k over 1,000,000 x 384 vectors: embedify.top_k vs numpy's best vs a plain Python loop.
(d) ``import embedify`` in a fresh interpreter, and which heavy modules it imported.

Runs (a)/(b) go through bench/harness.py: each in its own process with a fresh server process,
an untimed warm-up, >= 3 rounds with the order rotated, medians. Needs examples/embedify-acme.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from harness import (
    Runner,
    ServerProcess,
    Stopwatch,
    compare,
    header,
    median_import,
    median_run,
    median_seconds,
    print_machine,
)

from embedify.testing import FakeService, Request, Response

API_KEY = "acme-test-key"
MODEL, DIMENSION, INPUT_TYPE = "acme-embed-mini", 64, "document"
LATENCY, PER_TOKEN, SERVED_AT_ONCE = 0.15, 0.00001, 100
MAX_INPUTS, MAX_TOKENS = 2048, 300_000
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()


def varied_texts(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"doc {i}: " + " ".join(rng.choice(WORDS, size=int(rng.integers(10, 300))))
        for i in range(count)
    ]


def tokens_of(text: str) -> int:
    return len(text.split())  # the Acme server's count


@dataclass
class PrecomputedAcme(FakeService):
    """The Acme protocol with every answer row encoded ahead of time: a request costs the server
    a JSON parse and a join, so the client is what gets measured."""

    latency: float = LATENCY
    latency_per_token: float = PER_TOKEN
    max_in_flight: int = SERVED_AT_ONCE
    error_rate: float = 0.0
    rate_limit_every: int = 0
    retry_after: str = "0.2"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._rows: dict[str, bytes] = {}
        self._tokens: dict[str, int] = {}

    def precompute(self, texts: list[str]) -> None:
        from embedify_acme.testing import vector_for

        for text in texts:
            self._rows[text] = json.dumps(vector_for(INPUT_TYPE, text, DIMENSION)).encode()
            self._tokens[text] = tokens_of(text)

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return Response(401, {"error": {"message": "invalid api key", "code": "auth"}})
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            body = {"error": {"message": "rate limit exceeded", "code": "rate_limited"}}
            return Response(429, body, headers={"Retry-After": self.retry_after})
        if roll < self.error_rate:
            return Response(503, {"error": {"message": "overloaded", "code": "unavailable"}})
        inputs = request.json()["inputs"]
        tokens = sum(self._tokens.get(t) or tokens_of(t) for t in inputs)
        if len(inputs) > MAX_INPUTS or tokens > MAX_TOKENS:
            return Response(413, {"error": {"message": "too large", "code": "too_many_inputs"}})
        with self._slots:
            time.sleep(self.latency + self.latency_per_token * tokens)
        rows = b",".join(self._rows[t] for t in inputs)
        payload = b'{"embeddings":[%s],"usage":{"tokens":%d}}' % (rows, tokens)
        return Response(200, payload, headers={"content-type": "application/json"})


def acme_server(options: dict[str, Any], texts: list[str]) -> PrecomputedAcme:
    server = PrecomputedAcme(**options)
    server.precompute(texts)
    return server


def ideal_schedule(texts: list[str], in_flight: int) -> tuple[float, int]:
    """The shortest server time over equal request sizes (rounds of ``in_flight`` requests):
    what a client with no overhead of its own could reach. Returns (seconds, size)."""
    tokens = [tokens_of(t) for t in texts]
    mean = sum(tokens) / len(tokens)
    best = (math.inf, 0)
    for size in range(1, min(MAX_INPUTS, len(texts)) + 1):
        if size * mean > MAX_TOKENS:
            break
        requests = math.ceil(len(texts) / size)
        rounds = math.ceil(requests / in_flight)
        seconds = rounds * LATENCY + PER_TOKEN * sum(tokens) / min(requests, in_flight)
        best = min(best, (seconds, size))
    return best


def _check(vectors: np.ndarray, texts: list[str]) -> bool:
    from embedify_acme.testing import vector_for

    sample = np.linspace(0, len(texts) - 1, min(100, len(texts))).astype(int)
    expected = np.array([vector_for(INPUT_TYPE, texts[i], DIMENSION) for i in sample])
    return vectors.shape[0] == len(texts) and bool(
        np.allclose(vectors[sample], expected, atol=1e-6)
    )


def embedify_run(
    stopwatch: Stopwatch, url: str, texts: list[str], options: dict[str, Any]
) -> dict[str, Any]:
    from embedify_acme.model import AcmeEmbeddingModel

    import embedify

    class BenchModel(AcmeEmbeddingModel):
        capabilities = replace(
            AcmeEmbeddingModel.capabilities,
            limits=embedify.Limits(
                max_inputs_per_request=MAX_INPUTS,
                max_tokens_per_request=MAX_TOKENS,
                max_tokens_per_input=8192,
            ),
        )

    model = BenchModel(MODEL, base_url=url, api_key=API_KEY, **options)
    stopwatch.imported()
    with stopwatch.work():
        try:
            result = model.embed_with_report(texts)
        except embedify.EmbeddingJobError as error:
            return {"failed": len(error.failures), "requests": error.report.requests}
    report = result.report
    return {
        "failed": report.failed,
        "requests": report.requests,
        "rate_limited": report.rate_limited,
        "retries": report.retries,
        "correct": _check(result.vectors, texts),
    }


def hand_tuned(
    stopwatch: Stopwatch, url: str, texts: list[str], size: int, in_flight: int
) -> dict[str, Any]:
    """The ideal plan by hand: equal requests, ``in_flight`` at once, no retries, no checks."""
    import httpx

    stopwatch.imported()

    async def run() -> np.ndarray:
        limits = httpx.Limits(max_connections=in_flight)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=120, limits=limits
        ) as client:
            bodies = [
                {"model": MODEL, "inputs": texts[i : i + size], "input_type": INPUT_TYPE}
                for i in range(0, len(texts), size)
            ]
            answers = await asyncio.gather(*(client.post("/v1/embed", json=b) for b in bodies))
        return np.concatenate([np.asarray(a.json()["embeddings"], np.float32) for a in answers])

    with stopwatch.work():
        vectors = asyncio.run(run())
    return {
        "failed": 0,
        "requests": math.ceil(len(texts) / size),
        "correct": _check(vectors, texts),
    }


def _print_rows(runs: dict[str, list[Any]], reference: float, label: str) -> None:
    print(
        f"  {'runner':36s} {'median s':>8s} {label:>8s} {'import':>7s} {'failed':>6s} "
        f"{'requests':>8s} {'correct':>7s}"
    )
    for name, group in runs.items():
        middle = median_run(group)
        seconds = median_seconds(group)
        details = middle.details
        error = f" ERROR {middle.error}" if middle.error else ""
        correct = all(run.details.get("correct") for run in group)
        print(
            f"  {name:36s} {seconds:8.2f} {seconds / reference:7.2f}x "
            f"{median_import(group):7.2f} {details.get('failed', '?')!s:>6s} "
            f"{details.get('requests', '?')!s:>8s} {'yes' if correct else 'NO':>7s}{error}"
        )


def bench_engine(count: int, repeats: int) -> None:
    texts = varied_texts(count)
    ideal, size = ideal_schedule(texts, SERVED_AT_ONCE)
    header(
        f"(a) engine overhead: {count} texts, {sum(map(tokens_of, texts)):,} tokens; "
        f"{LATENCY * 1000:.0f} ms + {PER_TOKEN * 1000:.2f} ms/token per request, "
        f"{SERVED_AT_ONCE} served at once; answers precomputed"
    )
    print(f"  ideal schedule: {size}-text requests, {SERVED_AT_ONCE} in flight: {ideal:.2f} s")
    warm = texts[: max(10, count // 50)]
    runners = [
        Runner(
            f"hand-tuned httpx, {size}/req",
            hand_tuned,
            (texts, size, SERVED_AT_ONCE),
            (warm, size, SERVED_AT_ONCE),
        ),
        Runner("embedify, no options", embedify_run, (texts, {}), (warm, {})),
        Runner(
            f"embedify, max_concurrency={SERVED_AT_ONCE}",
            embedify_run,
            (texts, {"max_concurrency": SERVED_AT_ONCE}),
            (warm, {"max_concurrency": SERVED_AT_ONCE}),
        ),
    ]
    runs = compare(runners, repeats=repeats, server=lambda: ServerProcess(acme_server, {}, texts))
    print("  target: embedify <= 1.3x the ideal schedule")
    _print_rows(runs, ideal, "x ideal")
    clean = median_seconds(runs["embedify, no options"])

    header("(b) the same job under a 429 storm (every 10th, Retry-After 0.2 s) and 2% 503s")
    faults = {"rate_limit_every": 10, "retry_after": "0.2", "error_rate": 0.02, "seed": 1}
    stormy = compare(
        [Runner("embedify, no options", embedify_run, (texts, {}), (warm, {}))],
        repeats=repeats,
        server=lambda: ServerProcess(acme_server, faults, texts),
    )
    _print_rows(stormy, clean, "x clean")
    details = median_run(stormy["embedify, no options"]).details
    print(
        f"  429s {details.get('rate_limited', '?')}, other retries "
        f"{(details.get('retries') or 0) - (details.get('rate_limited') or 0)}"
    )


def bench_top_k(rows: int, repeats: int, dimension: int = 384, k: int = 10) -> None:
    import embedify

    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((rows, dimension), dtype=np.float32)
    query = rng.standard_normal(dimension, dtype=np.float32)

    def ours() -> list[int]:
        return embedify.top_k(query, corpus, k)[0].tolist()  # type: ignore[no-any-return]

    def numpy_best() -> list[int]:
        normalized = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
        scores = normalized @ (query / np.linalg.norm(query))
        best = np.argpartition(-scores, k)[:k]
        return best[np.argsort(-scores[best])].tolist()  # type: ignore[no-any-return]

    contenders = {"embedify.top_k": ours, "numpy normalise + argpartition": numpy_best}
    assert ours() == numpy_best(), "top-k results differ"  # also the warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(repeats):
        for name in names[round_ % 2 :] + names[: round_ % 2]:
            started = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - started)

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
    ours_median = statistics.median(times["embedify.top_k"])
    numpy_median = statistics.median(times["numpy normalise + argpartition"])
    header(f"(c) top-{k} over {rows:,} x {dimension} (median of {repeats}, order rotated)")
    print(
        f"  embedify {ours_median * 1000:.0f} ms; numpy normalise + argpartition "
        f"{numpy_median * 1000:.0f} ms ({numpy_median / ours_median:.2f}x ours); plain Python "
        f"loop ~{python_loop:.0f} s (timed on {subset:,} rows, scaled; "
        f"{python_loop / ours_median:.0f}x ours)"
    )


def bench_import(repeats: int = 7) -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import embedify; "
        "e = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'cohere', 'onnxruntime', "
        "'numpy', 'pydantic') if m in sys.modules]; print(e, ','.join(heavy))"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)  # warm-up
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
    header(f"(d) import embedify in a fresh interpreter (median of {repeats}, after a warm-up)")
    print(
        f"  {statistics.median(times) * 1000:.1f} ms (target < 100 ms); heavy modules "
        f"imported: {heavy}; bare interpreter start {statistics.median(baseline) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,c,d", help="a (includes b), c, d")
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (a median of fewer runs is not a result)")
    print_machine("each engine run in its own process; a fresh server process per run")
    chosen = set(args.only.split(","))
    if "a" in chosen:
        bench_engine(args.texts, args.repeats)
    if "c" in chosen:
        bench_top_k(args.rows, args.repeats)
    if "d" in chosen:
        bench_import()


if __name__ == "__main__":
    main()
