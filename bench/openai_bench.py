"""OpenAI-protocol benchmark (not a test): `python bench/openai_bench.py [--texts 20000]`.

A loopback OpenAI server in its own process (150 ms per request + 0.01 ms per token, at most
100 requests served at once, the real API's validation) and the same texts sent by each client,
each in its own process: embedify, the raw openai SDK (sequential, and asyncio.gather, in chunks
of 2048), LlamaIndex's OpenAIEmbedding (default sync, and async with batch 100) and LangChain's
OpenAIEmbeddings (sync and async) when they are installed. Reported: wall time, requests, 429s,
failures, peak RSS, ratio to the ideal. `--rpm/--tpm` add a server-side rate limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

LATENCY, PER_TOKEN, IN_FLIGHT = 0.15, 0.00001, 100
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone".split()


def make_texts(count: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [
        f"{i} " + " ".join(rng.choice(WORDS, size=int(rng.integers(10, 300)))) for i in range(count)
    ]


def serve(urls: Any, rpm: int | None, tpm: int | None) -> None:
    from embedify_openai.testing import FakeOpenAI

    from embedify.testing import LoopbackServer

    fake = FakeOpenAI(
        latency=LATENCY,
        latency_per_token=PER_TOKEN,
        max_in_flight=IN_FLIGHT,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
    )
    with LoopbackServer(fake) as server:
        urls.put(server.url)
        while True:
            time.sleep(1)
            with open(os.environ["BENCH_LOG"], "w") as log:
                json.dump([entry["status"] for entry in fake.log], log)


def client(name: str, url: str, texts: list[str]) -> int:
    """Run one client; return how many vectors it got."""
    base, key, model = f"{url}/v1", "sk-test-0123456789abcdef", "text-embedding-3-small"
    if name == "embedify":
        import embedify

        return len(
            embedify.get_model(
                f"openai:{model}", base_url=base, api_key=key, max_concurrency=IN_FLIGHT
            ).embed(texts)
        )
    if name == "careful-httpx":  # the baseline: no SDK, base64 into numpy, one round of requests
        import base64

        import httpx

        size = math.ceil(len(texts) / IN_FLIGHT)
        while sum(len(t.split()) * 1.3 for t in texts[:size]) > 250_000:
            size //= 2

        async def careful() -> int:
            limits = httpx.Limits(max_connections=IN_FLIGHT)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(
                base_url=base, headers=headers, limits=limits, timeout=300
            ) as http:
                responses = await asyncio.gather(
                    *(
                        http.post(
                            "/embeddings",
                            json={
                                "input": texts[i : i + size],
                                "model": model,
                                "encoding_format": "base64",
                            },
                        )
                        for i in range(0, len(texts), size)
                    )
                )
            rows = [
                np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
                for r in responses
                for item in r.json()["data"]
            ]
            return len(rows)

        return asyncio.run(careful())
    if name.startswith("openai-sdk"):
        import openai

        chunks = [texts[i : i + 2048] for i in range(0, len(texts), 2048)]
        if name == "openai-sdk-sequential":
            sdk = openai.OpenAI(base_url=base, api_key=key)
            return sum(len(sdk.embeddings.create(input=c, model=model).data) for c in chunks)
        asdk = openai.AsyncOpenAI(base_url=base, api_key=key)

        async def gather() -> int:
            done = await asyncio.gather(
                *(asdk.embeddings.create(input=c, model=model) for c in chunks)
            )
            return sum(len(r.data) for r in done)

        return asyncio.run(gather())
    if name.startswith("llamaindex"):
        from llama_index.embeddings.openai import OpenAIEmbedding  # type: ignore[import-not-found]

        if name == "llamaindex-default":
            li = OpenAIEmbedding(model=model, api_base=base, api_key=key)
            return len(li.get_text_embedding_batch(texts))
        li = OpenAIEmbedding(model=model, api_base=base, api_key=key, embed_batch_size=100)
        return len(asyncio.run(li.aget_text_embedding_batch(texts)))
    if name.startswith("langchain"):
        from langchain_openai import OpenAIEmbeddings  # type: ignore[import-not-found]

        lc = OpenAIEmbeddings(
            model=model, base_url=base, api_key=key, check_embedding_ctx_length=False
        )
        if name == "langchain-sync":
            return len(lc.embed_documents(texts))
        return len(asyncio.run(lc.aembed_documents(texts)))
    raise SystemExit(f"unknown client {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--rpm", type=int)
    parser.add_argument("--tpm", type=int)
    parser.add_argument("--client")
    parser.add_argument("--url")
    parser.add_argument(
        "--clients",
        default="embedify,openai-sdk-sequential,openai-sdk-gather,"
        "llamaindex-async-100,llamaindex-default,langchain-async,langchain-sync",
    )
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    texts = make_texts(args.texts)
    if args.client:
        started = time.perf_counter()
        try:
            count, error = client(args.client, args.url, texts), None
        except Exception as exc:  # report any client's failure as data
            count, error = 0, f"{type(exc).__name__}: {str(exc)[:80]}"
        print(
            json.dumps(
                {
                    "seconds": time.perf_counter() - started,
                    "count": count,
                    "error": error,
                    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            )
        )
        return

    from embedify_openai.testing import count_tokens

    tokens = sum(count_tokens(t) for t in texts)
    fewest = max(math.ceil(len(texts) / 2048), math.ceil(tokens / 300_000))
    ideal = LATENCY + PER_TOKEN * tokens / IN_FLIGHT
    if args.tpm:
        ideal = max(ideal, (tokens - args.tpm) / args.tpm * 60)
    print(
        f"{len(texts)} texts, {tokens} tokens; fewest valid requests {fewest}; ideal {ideal:.2f} s"
        + (f"; server limit {args.rpm} RPM / {args.tpm} TPM" if args.tpm else "")
    )
    print(
        f"{'client':24s} {'seconds':>8s} {'x ideal':>8s} {'requests':>8s} {'429s':>5s} "
        f"{'other errors':>12s} {'RSS MB':>7s}  result"
    )
    for name in args.clients.split(","):
        log = f"/tmp/embedify-bench-{os.getpid()}-{name}.json"
        os.environ["BENCH_LOG"] = log
        context = multiprocessing.get_context("spawn")
        urls = context.Queue()
        server = context.Process(target=serve, args=(urls, args.rpm, args.tpm), daemon=True)
        server.start()
        url = urls.get(timeout=60)
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--client",
                    name,
                    "--url",
                    url,
                    "--texts",
                    str(args.texts),
                ],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            result = {"seconds": args.timeout, "count": 0, "error": "timed out", "rss": 0}
        except (json.JSONDecodeError, IndexError):
            result = {"seconds": 0, "count": 0, "error": done.stderr.strip()[-80:], "rss": 0}
        time.sleep(1.2)
        server.terminate()
        with open(log) as handle:
            statuses = json.load(handle)
        outcome = "ok" if result["count"] == len(texts) else f"FAILED {result['error']}"
        print(
            f"{name:24s} {result['seconds']:8.2f} {result['seconds'] / ideal:8.2f} "
            f"{len(statuses):8d} {statuses.count(429):5d} "
            f"{sum(s not in (200, 429) for s in statuses):12d} {result['rss']:7.0f}  {outcome}"
        )


if __name__ == "__main__":
    main()
