"""OpenAI-protocol benchmark (not a test): ``python bench/openai_bench.py [--only a,b,c]``.

Against the loopback OpenAI server (``embedify_openai.testing.FakeOpenAI``, a fresh one in its
own process for every run), the same texts sent by embedify and by its peers, each run in its
own process (bench/harness.py: untimed warm-up, median of >= 3 rounds, order rotated):

(a) rate-limited: 3,000 RPM / 1,000,000 TPM refilling buckets, 2% 5xx, 5,000 texts (~0.9M
    tokens). Targets: 0 failures, wall <= 1.10x the limit-bound time (tokens / TPM less what the
    buckets held at the start), <= 10% of requests answered 429; two processes sharing the key
    (half the texts each) both with 0 failures. Peers: LlamaIndex async, the raw SDK.
(b) self-hosted (infinity-emb / TEI on a CPU): one compute queue, no limits advertised, a 60 s
    client timeout; 20,000 texts. embedify with no options vs the best fixed batch size of a
    sweep (target <= 1.2x), and the work the server did vs the work needed (resent requests).
(c) unlimited: 150 ms + 0.01 ms/token per request, 100 served at once, 20,000 texts: embedify
    vs a hand-written aiohttp client (200-text requests, 100 in flight; target <= 1.2x),
    LlamaIndex async (batch 100), LangChain async, the raw SDK with asyncio.gather.
(f) the fake alone, read by a client that decodes nothing: the ceiling the scenarios must stay
    well below for the fake not to be what is measured.

Defaults are the sizes of issue 8. ``--speed N`` runs (b) N times faster: compute time and the
client timeout both divided by N, so which requests time out stays that of the full job (fewer
texts would not do that: request sizes, queue waits and timeouts do not shrink with the job).
The ``--*-texts`` flags shrink a scenario for a quick check.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import threading
from typing import Any

import numpy as np
from harness import (
    Run,
    Runner,
    ServerProcess,
    Stopwatch,
    compare,
    header,
    installed,
    median_import,
    median_run,
    median_seconds,
    print_machine,
    run_isolated,
)

MODEL, KEY = "text-embedding-3-small", "sk-test-0123456789abcdef"
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone".split()
RPM, TPM, ERROR_RATE = 3_000, 1_000_000, 0.02
LATENCY, PER_TOKEN, SERVED_AT_ONCE = 0.15, 0.00001, 100
# Self-hosted: MiniLM-class model on infinity-emb on this CPU, ~10 ms per text of ~180 tokens.
HOSTED_PER_REQUEST, HOSTED_PER_TOKEN, HOSTED_TIMEOUT = 0.005, 0.00005, 60.0


def make_texts(count: int, seed: int = 0) -> list[str]:
    """Texts of 10-350 words (~180 tokens on average by the server's count)."""
    rng = np.random.default_rng(seed)
    return [
        f"{i} " + " ".join(rng.choice(WORDS, size=int(rng.integers(10, 350)))) for i in range(count)
    ]


def openai_server(options: dict[str, Any], texts: list[str]) -> Any:
    from embedify_openai.testing import FakeOpenAI

    fake = FakeOpenAI(**options)
    fake.precompute(texts, MODEL)
    return fake


def _correct(vectors: Any, texts: list[str]) -> bool:
    from embedify_openai.testing import vector_for

    rows = np.asarray(vectors, dtype=np.float32)
    sample = np.linspace(0, len(texts) - 1, min(50, len(texts))).astype(int)
    expected = np.stack([vector_for(MODEL, texts[i]) for i in sample])
    return rows.shape[0] == len(texts) and bool(np.allclose(rows[sample], expected, atol=1e-6))


# -- runners (module level: each runs in a spawned process) -----------------------------------


def embedify_job(
    stopwatch: Stopwatch, url: str, texts: list[str], options: dict[str, Any]
) -> dict[str, Any]:
    import openai  # noqa: F401  (the plugin imports the SDK lazily: count it as import, as for peers)

    import embedify

    model = embedify.get_model(f"openai:{MODEL}", base_url=f"{url}/v1", api_key=KEY, **options)
    stopwatch.imported()
    with stopwatch.work():
        try:
            result = model.embed_with_report(texts)
            failed, report, vectors = 0, result.report, result.vectors
        except embedify.EmbeddingJobError as error:
            failed, report, vectors = len(error.failures), error.report, None
    correct = vectors is not None and _correct(vectors, texts)
    return {"failed": failed, "client_requests": report.requests, "correct": correct}


def embedify_two_processes(
    stopwatch: Stopwatch, url: str, texts: list[str], options: dict[str, Any]
) -> dict[str, Any]:
    """Two jobs in two processes sharing one key (one server), half the texts each."""
    stopwatch.imported()
    halves = [texts[: len(texts) // 2], texts[len(texts) // 2 :]]
    runs: list[Run] = []
    with stopwatch.work():
        threads = [
            threading.Thread(
                target=lambda half=half: runs.append(
                    run_isolated("half", embedify_job, (url, half, options), 3600)
                )
            )
            for half in halves
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    failed = [run.details.get("failed", len(half)) for run, half in zip(runs, halves)]
    return {
        "failed": sum(failed),
        "failed_each": failed,
        "correct": all(run.details.get("correct") for run in runs),
        "seconds_each": [round(run.seconds, 1) for run in runs],
    }


def llamaindex_async(
    stopwatch: Stopwatch, url: str, texts: list[str], batch: int
) -> dict[str, Any]:
    from llama_index.embeddings.openai import OpenAIEmbedding  # type: ignore[import-not-found]

    stopwatch.imported()
    embed = OpenAIEmbedding(model=MODEL, api_base=f"{url}/v1", api_key=KEY, embed_batch_size=batch)
    with stopwatch.work():
        vectors = asyncio.run(embed.aget_text_embedding_batch(texts))
    return {"failed": 0, "correct": _correct(vectors, texts)}


def langchain_async(stopwatch: Stopwatch, url: str, texts: list[str]) -> dict[str, Any]:
    from langchain_openai import OpenAIEmbeddings  # type: ignore[import-not-found]

    stopwatch.imported()
    # check_embedding_ctx_length=False: its default tokenises with tiktoken, whose encoding is
    # downloaded at run time (no network here); the texts are far below the context length.
    embed = OpenAIEmbeddings(
        model=MODEL, base_url=f"{url}/v1", api_key=KEY, check_embedding_ctx_length=False
    )
    with stopwatch.work():
        vectors = asyncio.run(embed.aembed_documents(texts))
    return {"failed": 0, "correct": _correct(vectors, texts)}


def raw_sdk_sequential(
    stopwatch: Stopwatch, url: str, texts: list[str], batch: int
) -> dict[str, Any]:
    """What a user writes first: a loop over batches with the SDK's own retries (2)."""
    import openai

    stopwatch.imported()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    vectors: list[list[float]] = []
    with stopwatch.work():
        for start in range(0, len(texts), batch):
            answer = client.embeddings.create(input=texts[start : start + batch], model=MODEL)
            vectors.extend(item.embedding for item in answer.data)
    return {"failed": 0, "correct": _correct(vectors, texts)}


def raw_sdk_gather(stopwatch: Stopwatch, url: str, texts: list[str], batch: int) -> dict[str, Any]:
    import openai

    stopwatch.imported()
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY)

    async def gather() -> list[Any]:
        answers = await asyncio.gather(
            *(
                client.embeddings.create(input=texts[start : start + batch], model=MODEL)
                for start in range(0, len(texts), batch)
            )
        )
        return [item.embedding for answer in answers for item in answer.data]

    with stopwatch.work():
        vectors = asyncio.run(gather())
    return {"failed": 0, "correct": _correct(vectors, texts)}


def hand_written_aiohttp(
    stopwatch: Stopwatch, url: str, texts: list[str], size: int, in_flight: int
) -> dict[str, Any]:
    """The baseline: no SDK, no retries, base64 decoded straight into numpy."""
    import base64

    import aiohttp

    stopwatch.imported()

    async def run() -> np.ndarray:
        slots = asyncio.Semaphore(in_flight)
        headers = {"Authorization": f"Bearer {KEY}"}
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def one(chunk: list[str]) -> list[np.ndarray]:
                body = {"model": MODEL, "input": chunk, "encoding_format": "base64"}
                async with slots, session.post(f"{url}/v1/embeddings", json=body) as answer:
                    data = (await answer.json())["data"]
                return [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data]

            parts = await asyncio.gather(
                *(one(texts[i : i + size]) for i in range(0, len(texts), size))
            )
        return np.stack([row for part in parts for row in part])

    with stopwatch.work():
        vectors = asyncio.run(run())
    return {"failed": 0, "correct": _correct(vectors, texts)}


def trivial_reader(
    stopwatch: Stopwatch, url: str, texts: list[str], size: int, in_flight: int
) -> dict[str, Any]:
    """Posts the requests and reads the answers' bytes, decoding nothing: the fake's ceiling."""
    import aiohttp

    stopwatch.imported()

    async def run() -> int:
        slots = asyncio.Semaphore(in_flight)
        headers = {"Authorization": f"Bearer {KEY}"}
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def one(chunk: list[str]) -> int:
                body = {"model": MODEL, "input": chunk, "encoding_format": "base64"}
                async with slots, session.post(f"{url}/v1/embeddings", json=body) as answer:
                    return len(await answer.read())

            sizes = await asyncio.gather(
                *(one(texts[i : i + size]) for i in range(0, len(texts), size))
            )
        return sum(sizes)

    with stopwatch.work():
        received = asyncio.run(run())
    return {"failed": 0, "correct": True, "bytes": received}


# -- reporting --------------------------------------------------------------------------------


def _summary(runs: list[Run], total: int) -> dict[str, Any]:
    middle = median_run(runs)
    statuses = middle.details.get("server", {}).get("statuses", [])
    failed = [run.details.get("failed", total) if not run.error else total for run in runs]
    return {
        "seconds": median_seconds(runs),
        "worst": max(run.seconds for run in runs),
        "imports": median_import(runs),
        "failed_worst": max(failed),
        "requests": len(statuses),
        "share_429": statuses.count(429) / len(statuses) if statuses else 0.0,
        "correct": all(run.details.get("correct") for run in runs),
        "errors": sorted({run.error for run in runs if run.error}),
        "details": middle.details,
    }


def _row(name: str, summary: dict[str, Any], ratio: float, extra: str = "") -> str:
    errors = f" ERROR {summary['errors'][0]}" if summary["errors"] else ""
    return (
        f"  {name:44s} {summary['seconds']:8.2f} {summary['worst']:7.2f} {ratio:7.2f}x "
        f"{summary['imports']:7.2f} "
        f"{summary['failed_worst']:7d} {summary['requests']:8d} {summary['share_429']:6.0%} "
        f"{'yes' if summary['correct'] else 'NO':>7s}  {extra}{errors}"
    )


def _table_header(ratio_label: str) -> None:
    print(
        f"  {'runner':44s} {'median s':>8s} {'worst s':>7s} {ratio_label:>8s} {'import':>7s} "
        f"{'failed':>7s} "
        f"{'requests':>8s} {'429s':>6s} {'correct':>7s}"
    )


def _unavailable(names: list[str]) -> None:
    for name in names:
        print(f"  {name:44s} not installed")


# -- scenarios --------------------------------------------------------------------------------


def rate_limited(count: int, start_fill: float, repeats: int) -> None:
    from embedify_openai.testing import count_tokens

    texts = make_texts(count)
    tokens = sum(count_tokens(t) for t in texts)
    bound = max(0.0, tokens - start_fill * TPM) / TPM * 60
    header(
        f"(a) rate-limited: {count} texts, {tokens:,} tokens; {RPM} RPM / {TPM:,} TPM buckets "
        f"holding {start_fill:.0%} at the start; {ERROR_RATE:.0%} 5xx"
    )
    print(f"  limit-bound time: (tokens - what the bucket held) / TPM = {bound:.1f} s")
    options = {
        "requests_per_minute": RPM,
        "tokens_per_minute": TPM,
        "error_rate": ERROR_RATE,
        "initial_fill": start_fill,
        "latency": LATENCY,
        "latency_per_token": PER_TOKEN,
        "max_in_flight": SERVED_AT_ONCE,
        "seed": 1,
    }
    warm = texts[: max(10, count // 50)]
    runners = [
        Runner("embedify", embedify_job, (texts, {}), (warm, {})),
        Runner("embedify, 2 processes, 1 key", embedify_two_processes, (texts, {}), (warm, {})),
        Runner("raw SDK, sequential, 100/req", raw_sdk_sequential, (texts, 100), (warm, 100)),
    ]
    missing = []
    if installed("llama_index.embeddings.openai"):
        runners.append(
            Runner("LlamaIndex async, batch 100", llamaindex_async, (texts, 100), (warm, 100))
        )
    else:
        missing.append("LlamaIndex async")
    runs = compare(
        runners,
        repeats=repeats,
        timeout=max(600.0, 20 * bound),
        server=lambda: ServerProcess(openai_server, options, texts),
    )
    print("  targets: 0 failures, <= 1.10x the limit-bound time, <= 10% 429s")
    _table_header("x bound")
    for name, group in runs.items():
        summary = _summary(group, count)
        extra = ""
        if "failed_each" in summary["details"]:
            slowest = max(summary["details"]["seconds_each"])
            extra = (
                f"failed per process {summary['details']['failed_each']}, work seconds "
                f"{summary['details']['seconds_each']} (slowest {slowest / bound:.2f}x bound; "
                "the wall adds two process starts)  "
            )
        ratio = summary["seconds"] / bound if bound else float("nan")
        print(_row(name, summary, ratio, extra))
    _unavailable(missing)


def self_hosted(count: int, speed: float, repeats: int, sizes: list[int]) -> None:
    from embedify_openai.testing import count_tokens

    texts = make_texts(count)
    tokens = sum(count_tokens(t) for t in texts)
    timeout = HOSTED_TIMEOUT / speed
    per_request, per_token = HOSTED_PER_REQUEST / speed, HOSTED_PER_TOKEN / speed
    header(
        f"(b) self-hosted compute queue: {count} texts, {tokens:,} tokens; work per request "
        f"{per_request * 1000:.2f} ms + {per_token * 1e6:.2f} us/token (one queue, abandoned "
        f"requests still computed); client timeout {timeout:.2f} s"
    )
    print(
        f"  the server's work for the job itself: {tokens * per_token:.1f} s + the per-request cost"
    )
    options = {
        "self_hosted": True,
        "latency": per_request,
        "latency_per_token": per_token,
        "seed": 1,
    }
    warm = texts[: max(10, count // 50)]
    runners = [
        Runner(
            "embedify, no options",
            embedify_job,
            (texts, {"timeout": timeout}),
            (warm, {"timeout": timeout}),
        )
    ]
    for size in sizes:
        job = {"timeout": timeout, "batch_size": size}
        runners.append(
            Runner(f"embedify batch_size={size}", embedify_job, (texts, job), (warm, job))
        )
    runs = compare(
        runners,
        repeats=repeats,
        timeout=max(300.0, 40 * tokens * per_token),
        server=lambda: ServerProcess(openai_server, options, texts),
    )
    summaries = {name: _summary(group, count) for name, group in runs.items()}
    swept = {n: s for n, s in summaries.items() if "batch_size" in n and s["failed_worst"] == 0}
    best_name = min(swept, key=lambda n: swept[n]["seconds"]) if swept else None
    best = swept[best_name]["seconds"] if best_name else float("nan")
    print(f"  target: embedify with no options <= 1.2x the best fixed batch size ({best_name})")
    _table_header("x best")
    for name, summary in summaries.items():
        server = summary["details"].get("server", {})
        received = server.get("inputs_received") or 0
        extra = (
            f"inputs sent {received / count:.2f}x the job, server busy "
            f"{(server.get('compute_seconds') or 0):.1f} s  "
        )
        print(_row(name, summary, summary["seconds"] / best, extra))


def unlimited(count: int, repeats: int) -> None:
    from embedify_openai.testing import count_tokens

    texts = make_texts(count)
    tokens = sum(count_tokens(t) for t in texts)
    size, in_flight = 200, SERVED_AT_ONCE
    rounds = math.ceil(math.ceil(count / size) / in_flight)
    bound = rounds * LATENCY + PER_TOKEN * tokens / in_flight
    header(
        f"(c) unlimited: {count} texts, {tokens:,} tokens; {LATENCY * 1000:.0f} ms + "
        f"{PER_TOKEN * 1000:.2f} ms/token per request, {SERVED_AT_ONCE} served at once"
    )
    print(f"  server-side bound for 200-text requests, 100 in flight: {bound:.2f} s")
    options = {
        "latency": LATENCY,
        "latency_per_token": PER_TOKEN,
        "max_in_flight": SERVED_AT_ONCE,
        "seed": 1,
    }
    warm = texts[: max(10, count // 50)]
    if not installed("aiohttp"):
        print("  (c) needs its baseline, the hand-written aiohttp client: pip install aiohttp")
        return
    baseline = "hand-written aiohttp, 200/req, 100 in flight"
    runners = [
        Runner(baseline, hand_written_aiohttp, (texts, size, in_flight), (warm, size, in_flight)),
        Runner("embedify, no options", embedify_job, (texts, {}), (warm, {})),
        Runner("raw SDK, gather, 1000/req", raw_sdk_gather, (texts, 1000), (warm, 1000)),
    ]
    missing = []
    if installed("llama_index.embeddings.openai"):
        runners.append(
            Runner("LlamaIndex async, batch 100", llamaindex_async, (texts, 100), (warm, 100))
        )
    else:
        missing.append("LlamaIndex async")
    if installed("langchain_openai"):
        runners.append(Runner("LangChain async (defaults)", langchain_async, (texts,), (warm,)))
    else:
        missing.append("LangChain async")
    runs = compare(
        runners, repeats=repeats, server=lambda: ServerProcess(openai_server, options, texts)
    )
    summaries = {name: _summary(group, count) for name, group in runs.items()}
    reference = summaries[baseline]["seconds"]
    print("  target: embedify <= 1.2x the hand-written client, ahead of every peer")
    _table_header("x hand")
    for name, summary in summaries.items():
        print(_row(name, summary, summary["seconds"] / reference))
    _unavailable(missing)


def fake_ceiling(count: int, repeats: int) -> None:
    texts = make_texts(count)
    header(
        f"(f) the fake alone: {count} texts, no latency, a client that only reads the bytes "
        "(what the fake can serve on this machine; the scenarios above must stay well below it)"
    )
    runners = [
        Runner(
            f"{size}-text requests, {in_flight} in flight",
            trivial_reader,
            (texts if size > 1 else texts[:2000], size, in_flight),
            (texts[:400], size, in_flight),
        )
        for size, in_flight in ((200, 100), (1, 32))
    ]
    runs = compare(runners, repeats=repeats, server=lambda: ServerProcess(openai_server, {}, texts))
    for name, group in runs.items():
        middle = median_run(group)
        requests = len(middle.details["server"]["statuses"])
        seconds = median_seconds(group)
        megabytes = middle.details.get("bytes", 0) / 1e6
        print(
            f"  {name:44s} {seconds:6.2f} s  {requests / seconds:6.0f} requests/s  "
            f"{megabytes / seconds:5.0f} MB/s of answers"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="f,a,b,c", help="scenarios: f (the fake alone), a, b, c")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate-limited-texts", type=int, default=5_000)
    parser.add_argument(
        "--start-fill",
        type=float,
        default=0.0,
        help="share of the buckets full at the start of (a): 0 = the key was just busy "
        "(the job is then limit-bound throughout), 1 = unused for a minute",
    )
    parser.add_argument("--hosted-texts", type=int, default=20_000)
    parser.add_argument(
        "--speed", type=float, default=1.0, help="(b): divide compute time and the timeout by this"
    )
    parser.add_argument("--sizes", default="16,32,64,128,256", help="(b): batch sizes swept")
    parser.add_argument("--unlimited-texts", type=int, default=20_000)
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (a median of fewer runs is not a result)")
    print_machine("each runner in its own process; a fresh server process per run")
    chosen = set(args.only.split(","))
    if "f" in chosen:
        fake_ceiling(args.unlimited_texts, args.repeats)
    if "a" in chosen:
        rate_limited(args.rate_limited_texts, args.start_fill, args.repeats)
    if "b" in chosen:
        sizes = [int(size) for size in args.sizes.split(",")]
        self_hosted(args.hosted_texts, args.speed, args.repeats, sizes)
    if "c" in chosen:
        unlimited(args.unlimited_texts, args.repeats)


if __name__ == "__main__":
    main()
