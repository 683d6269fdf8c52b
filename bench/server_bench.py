"""Embedding-server benchmark (not a test): ``python bench/server_bench.py``.

``embedify serve local`` against infinity-emb (``infinity_emb v2``, its default torch engine)
serving the same all-MiniLM-L6-v2 folder (the one embedify-pack-minilm ships), on this machine.
Closed-loop clients (1, 16 and 64 at once) each send requests of 1 to 32
texts (real docstring paragraphs, lengths as they come) to the OpenAI-compatible
``POST /embeddings`` route of both; reported per level: texts/s and p50/p99 request latency,
the median of ``--runs`` runs, and embedify's throughput ratio to infinity. Both servers run side
by side (each warmed up) and are measured in turns, A B B A per level, the order rotated each
run, so that each ratio compares measurements made within a minute of each other on a machine
whose other load varies. Before measuring, the vectors of both servers are
compared (a cosine below 0.999 on the same weights would be a bench bug).

infinity-emb pins its own stack (sentence-transformers < 4, click < 8.2), so it lives in its
own virtualenv; point ``--infinity`` at its ``infinity_emb`` executable::

    python3 -m venv /tmp/infinity-venv
    /tmp/infinity-venv/bin/pip install torch==2.13.0 "infinity-emb[server,torch]"
    python bench/server_bench.py --infinity /tmp/infinity-venv/bin/infinity_emb
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from local_bench import workload


def make_texts(count: int) -> list[str]:
    """The local bench's users' mix: short queries, 40-120 and 150-250-word passages."""
    classes, _, _ = workload(count)
    return [text for texts in classes.values() for text in texts]


def minilm_folder() -> Path:
    from embedify_pack_minilm import model_folder

    return Path(model_folder())


SERVED_NAME = "all-MiniLM-L6-v2"
LEVELS = (1, 16, 64)
EMBEDIFY_ARGS: list[str] = []  # extra `embedify serve` arguments (--embedify-arg)
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


@dataclass
class Level:
    texts_per_second: float
    p50: float
    p99: float


def cpu_description() -> str:
    model, flags = platform.processor() or "unknown", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                present = set(line.split(":", 1)[1].split())
                flags = " ".join(flag for flag in SIMD_FLAGS if flag in present)
    except OSError:
        pass
    return f"{model}; {os.cpu_count()} logical CPUs; SIMD flags: {flags or 'unknown'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(name: str, port: int, infinity: str) -> list[str]:
    if name == "embedify":
        return [
            sys.executable, "-m", "embedify", "serve", "local", "--port", str(port),
            "--served-model-name", SERVED_NAME, "--no-access-log", "--no-auth",
            # 64 clients x up to 32 texts: room for all of them, so that nothing is refused.
            "--max-concurrent-requests", "2048", *EMBEDIFY_ARGS,
        ]  # fmt: skip
    return [
        infinity, "v2", "--model-id", str(minilm_folder()), "--served-model-name", SERVED_NAME,
        "--port", str(port), "--engine", "torch", "--device", "cpu", "--log-level", "warning",
    ]  # fmt: skip


@contextmanager
def running(name: str, infinity: str) -> Iterator[str]:
    """Start one server, wait until it answers, yield its URL, stop it with SIGTERM."""
    import httpx

    port = free_port()
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
    }
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"server_bench_{name}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        server_command(name, port, infinity), stdout=log, stderr=subprocess.STDOUT, env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within 300 s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def make_requests(texts: list[str], count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [rng.sample(texts, rng.randint(1, 32)) for _ in range(count)]


async def load(url: str, requests: list[list[str]], clients: int) -> Level:
    """``clients`` closed-loop clients share ``requests``; each waits for its answer before
    sending its next request."""
    import httpx

    pending = list(reversed(requests))
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def client_loop() -> None:
            while pending:
                texts = pending.pop()
                started = time.perf_counter()
                response = await client.post(
                    "/embeddings",
                    json={"input": texts, "model": SERVED_NAME, "encoding_format": "base64"},
                )
                await response.aread()
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return Level(sum(map(len, requests)) / elapsed, quantiles[49], quantiles[98])


def vectors(url: str, texts: list[str]) -> np.ndarray:
    import httpx

    body = httpx.post(
        f"{url}/embeddings",
        json={"input": texts, "model": SERVED_NAME, "encoding_format": "float"},
        timeout=600,
    ).json()
    return np.array([item["embedding"] for item in body["data"]], np.float32)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--requests-per-client",
        type=float,
        default=1.0,
        help="Requests per client and level (at least 8 per level).",
    )
    parser.add_argument("--infinity", default=shutil.which("infinity_emb") or "infinity_emb")
    parser.add_argument(
        "--embedify-only",
        action="store_true",
        help="Measure embedify alone (no infinity-emb at hand): texts/s and latency, no ratio.",
    )
    parser.add_argument(
        "--embedify-arg", action="append", default=[], help="Extra `embedify serve` argument."
    )
    arguments = parser.parse_args()
    EMBEDIFY_ARGS.extend(arguments.embedify_arg)

    print(f"CPU: {cpu_description()}")
    print(
        "Note: this machine's 2 cores are shared with other jobs whose load varies by the minute;"
        "\nboth servers run side by side and are measured in turns (A B B A per level and run),"
        "\nso each ratio compares neighbouring measurements."
    )
    print(f"Python {platform.python_version()}; {arguments.runs} runs, order rotated.")
    print(f"embedify serve extra arguments: {EMBEDIFY_ARGS or 'none'}")
    texts = make_texts(2000)
    workload = {
        clients: make_requests(
            texts, max(8, round(arguments.requests_per_client * clients)), seed=clients
        )
        for clients in LEVELS
    }
    probe = texts[:32]
    runners = ["embedify"] if arguments.embedify_only else ["embedify", "infinity"]
    results: dict[str, dict[int, list[Level]]] = {
        name: {clients: [] for clients in LEVELS} for name in runners
    }
    ratios: dict[int, list[float]] = {clients: [] for clients in LEVELS}
    idle_cpu = dict.fromkeys(runners, 0.0)
    with contextlib.ExitStack() as servers:
        urls = {name: servers.enter_context(running(name, arguments.infinity)) for name in runners}
        pids = {name: server_pid(url) for name, url in urls.items()}
        references = {name: vectors(url, probe) for name, url in urls.items()}
        for url in urls.values():
            asyncio.run(load(url, workload[16][:32], 16))  # warm-up, not measured
        for run in range(arguments.runs):
            order = runners[run % 2 :] + runners[: run % 2]
            for clients in LEVELS:
                rates: dict[str, list[float]] = {name: [] for name in runners}
                for name in [*order, *reversed(order)]:
                    others = [n for n in runners if n != name]
                    before = {other: cpu_seconds(pids[other]) for other in others}
                    level = asyncio.run(load(urls[name], workload[clients], clients))
                    for other in others:
                        idle_cpu[other] += cpu_seconds(pids[other]) - before[other]
                    results[name][clients].append(level)
                    rates[name].append(level.texts_per_second)
                line = ", ".join(f"{n} {statistics.mean(rates[n]):.1f}/s" for n in runners)
                if not arguments.embedify_only:
                    ratio = statistics.mean(rates["embedify"]) / statistics.mean(rates["infinity"])
                    ratios[clients].append(ratio)
                    line += f", ratio {ratio:.2f}"
                print(f"run {run + 1}, {clients:>2} clients: {line}", flush=True)
    if not arguments.embedify_only:
        compare(references, probe, idle_cpu)

    def median(name: str, clients: int, field: str) -> float:
        return statistics.median(getattr(level, field) for level in results[name][clients])

    print(
        f"\n{'clients':>7} {'server':>9} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        "  throughput ratio (median of paired runs)"
    )
    for clients in LEVELS:
        for name in runners:
            rate = median(name, clients, "texts_per_second")
            p50 = median(name, clients, "p50") * 1000
            p99 = median(name, clients, "p99") * 1000
            shown = "" if arguments.embedify_only else "1.00x"
            if name == "embedify" and ratios[clients]:
                shown = f"{statistics.median(ratios[clients]):.2f}x"
            print(f"{clients:>7} {name:>9} {rate:>9.1f} {p50:>8.1f} {p99:>8.1f}  {shown}")


def compare(
    references: dict[str, np.ndarray], probe: list[str], idle_cpu: dict[str, float]
) -> None:
    """Both servers' vectors of the same texts must agree, or the comparison is invalid."""
    cosines = np.sum(references["embedify"] * references["infinity"], axis=1) / (
        np.linalg.norm(references["embedify"], axis=1)
        * np.linalg.norm(references["infinity"], axis=1)
    )
    print(f"\ncosine embedify vs infinity on {len(probe)} texts: min {cosines.min():.6f}")
    if cosines.min() < 0.999:
        print("WARNING: below 0.999 on the same weights: the comparison is invalid.")
    print(
        "CPU seconds each server used while the other was measured (idle cost): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in idle_cpu.items())
    )


def server_pid(url: str) -> int:
    """The process listening on ``url``'s port (the server, not a wrapper script)."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError(f"no process listens on port {port}")


if __name__ == "__main__":
    main()
