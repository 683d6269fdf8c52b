"""LlamaIndex indexing benchmark (not a test): `python bench/llamaindex_bench.py [--nodes 5000]`.

The LlamaIndex flow `VectorStoreIndex(nodes)` with `Settings.embed_model` set to each peer, all
against one loopback OpenAI server in its own process (150 ms per request + 0.01 ms per token,
at most 100 requests served at once, the real API's validation):

- `EmbedifyEmbedding("openai:text-embedding-3-small", base_url=...)`, nothing else configured;
- LlamaIndex's own `OpenAIEmbedding`, as its docs show (default: sync, batches of 100);
- the same with `VectorStoreIndex(nodes, use_async=True)`, LlamaIndex's documented async path.

One warm-up run of each peer apart, then rounds in rotated order; the median of the rounds is
reported with its ratio to LlamaIndex's default, the requests the server saw, and the lowest
cosine between each peer's node vectors and LlamaIndex's (the same server weights: must be 1).
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import time
from typing import Any

import numpy as np

LATENCY, PER_TOKEN, IN_FLIGHT = 0.15, 0.00001, 100
MODEL, API_KEY = "text-embedding-3-small", "sk-test-0123456789abcdef"
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone".split()
PEERS = ("embedify", "llamaindex-default", "llamaindex-async")


def serve(urls: Any, requests: Any) -> None:
    """The fake server, counting requests in shared memory."""
    from embedify_openai.testing import FakeOpenAI

    from embedify.testing import LoopbackServer, Request, Response

    fake = FakeOpenAI(latency=LATENCY, latency_per_token=PER_TOKEN, max_in_flight=IN_FLIGHT)

    def counted(request: Request) -> Response:
        with requests.get_lock():
            requests.value += 1
        return fake(request)

    with LoopbackServer(counted) as server:
        urls.put(server.url)
        while True:
            time.sleep(3600)


def make_nodes(count: int) -> list[Any]:
    from llama_index.core.schema import TextNode

    rng = np.random.default_rng(0)
    return [
        TextNode(id_=f"node-{i}", text=f"{i} " + " ".join(rng.choice(WORDS, size=40 + i % 200)))
        for i in range(count)
    ]


def embed_model(peer: str, base_url: str) -> Any:
    if peer == "embedify":
        from embedify_llamaindex import EmbedifyEmbedding

        return EmbedifyEmbedding(f"openai:{MODEL}", base_url=base_url, api_key=API_KEY)
    from llama_index.embeddings.openai import OpenAIEmbedding

    return OpenAIEmbedding(model=MODEL, api_base=base_url, api_key=API_KEY)


def index_once(peer: str, base_url: str, nodes: list[Any]) -> tuple[float, dict[str, Any]]:
    """Seconds to build the index, and its node vectors."""
    from llama_index.core import Settings, VectorStoreIndex

    Settings.embed_model = embed_model(peer, base_url)
    nodes = [node.model_copy() for node in nodes]  # no vector carried over between runs
    started = time.perf_counter()
    index = VectorStoreIndex(nodes, use_async=peer == "llamaindex-async")
    seconds = time.perf_counter() - started
    return seconds, index.vector_store.data.embedding_dict  # type: ignore[attr-defined]


def lowest_cosine(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    ids = sorted(theirs)
    a = np.asarray([ours[i] for i in ids])
    b = np.asarray([theirs[i] for i in ids])
    return float(
        (np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    simd = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if flag in flags]
    return f"{name}, {multiprocessing.cpu_count()} cores, flags: {' '.join(simd) or 'none'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    urls, requests = context.Queue(), context.Value("i", 0)
    server = context.Process(target=serve, args=(urls, requests), daemon=True)
    server.start()
    base_url = f"{urls.get(timeout=60)}/v1"
    nodes = make_nodes(args.nodes)
    print(f"{cpu_model()}; Python {platform.python_version()}")
    print(
        f"{args.nodes} nodes; server: {LATENCY * 1000:.0f} ms + {PER_TOKEN * 1000} ms/token per "
        f"request, {IN_FLIGHT} in flight; warm-up apart, median of {args.rounds} rotated rounds"
    )
    try:
        vectors = {peer: index_once(peer, base_url, nodes[:200])[1] for peer in PEERS}  # warm-up
        seconds: dict[str, list[float]] = {peer: [] for peer in PEERS}
        sent: dict[str, int] = {}
        for round_number in range(args.rounds):
            order = PEERS[round_number % len(PEERS) :] + PEERS[: round_number % len(PEERS)]
            for peer in order:
                before = requests.value
                took, vectors[peer] = index_once(peer, base_url, nodes)
                seconds[peer].append(took)
                sent[peer] = requests.value - before
    finally:
        server.terminate()

    baseline = statistics.median(seconds["llamaindex-default"])
    print(
        f"{'peer':20s} {'median s':>9s} {'runs s':>22s} {'vs default':>10s} {'requests':>8s} "
        f"{'min cosine':>10s}"
    )
    for peer in PEERS:
        median = statistics.median(seconds[peer])
        runs = " ".join(f"{value:.2f}" for value in seconds[peer])
        cosine = lowest_cosine(vectors[peer], vectors["llamaindex-default"])
        print(
            f"{peer:20s} {median:9.2f} {runs:>22s} {baseline / median:9.1f}x {sent[peer]:8d} "
            f"{cosine:10.6f}"
        )


if __name__ == "__main__":
    main()
