"""Honest timing for the benches: each run in a fresh process, import time apart from work,
an untimed warm-up, >= 3 repeats with the runner order rotated, medians, and the machine named.

A runner is a module-level function ``target(stopwatch, *args) -> dict``: it imports what it
needs, calls ``stopwatch.imported()``, does its work inside ``with stopwatch.work():`` and
returns what it wants reported (failures, requests...). ``compare`` runs every runner in its own
spawned process, optionally around a per-run server (``ServerProcess``), and returns the runs.
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Flags that change how fast numerical code runs; the rest of /proc/cpuinfo's list is noise here.
_RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_tile")


def machine() -> str:
    """The CPU model, its relevant flags, cores and load, Python, and the date (UTC)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    shown = " ".join(flag for flag in _RELEVANT_FLAGS if flag in flags) or "unknown"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"CPU: {model} ({os.cpu_count()} logical cores; flags: {shown}); load {load}; "
        f"Python {platform.python_version()}; {now}"
    )


class Stopwatch:
    """Marks, inside a runner's process, when imports ended and when the timed work ran."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self.import_seconds = 0.0
        self.work_seconds: float | None = None

    def imported(self) -> None:
        self.import_seconds = time.perf_counter() - self._started

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.work_seconds = time.perf_counter() - started


@dataclass
class Runner:
    name: str
    target: Callable[..., dict[str, Any]]
    args: tuple[Any, ...] = ()
    warmup_args: tuple[Any, ...] | None = None  # a smaller job for the untimed warm-up


@dataclass
class Run:
    name: str
    seconds: float
    import_seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], pipe: Any) -> None:
    os.environ["EMBEDIFY_CACHE_DIR"] = tempfile.mkdtemp(prefix="embedify-bench-")
    stopwatch = Stopwatch()
    try:
        details = target(stopwatch, *args)
        pipe.send((stopwatch.work_seconds, stopwatch.import_seconds, details, None))
    except BaseException as exc:  # a runner's crash is a result to report, not a bench crash
        error = f"{type(exc).__name__}: {str(exc)[:160]}"
        traceback.print_exc()
        pipe.send((stopwatch.work_seconds, stopwatch.import_seconds, {}, error))


def run_isolated(
    name: str, target: Callable[..., dict[str, Any]], args: tuple[Any, ...], timeout: float
) -> Run:
    """Run ``target(stopwatch, *args)`` in a fresh spawned interpreter."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(target, args, send))
    process.start()
    try:
        if not receive.poll(timeout):
            process.kill()
            return Run(name, timeout, 0.0, error=f"timed out after {timeout:.0f} s")
        work, imports, details, error = receive.recv()
    except EOFError:
        return Run(name, 0.0, 0.0, error=f"process died (exit code {process.exitcode})")
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
    return Run(name, work if work is not None else 0.0, imports, details, error)


class ServerProcess:
    """A ``LoopbackServer`` around ``factory(*args)`` (a FakeService) in its own process, so it
    does not compete for the client's GIL. ``stats()`` returns the service's request log
    summary: statuses, and its ``inputs_received`` / ``compute_seconds`` when it has them."""

    def __init__(self, factory: Callable[..., Any], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(factory, args, child), daemon=True)
        self.url = ""

    def __enter__(self) -> ServerProcess:
        self._process.start()
        if not self._pipe.poll(300):
            raise RuntimeError("the bench server did not start within 300 s")
        self.url = self._pipe.recv()
        return self

    def stats(self) -> dict[str, Any]:
        self._pipe.send("stats")
        return dict(self._pipe.recv())

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._pipe.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _serve(factory: Callable[..., Any], args: tuple[Any, ...], pipe: Any) -> None:
    from embedify.testing import LoopbackServer

    service = factory(*args)
    with LoopbackServer(service) as server:
        pipe.send(server.url)
        while pipe.recv() == "stats":
            pipe.send(
                {
                    "statuses": service.statuses,
                    "inputs_received": getattr(service, "inputs_received", None),
                    "compute_seconds": getattr(service, "compute_seconds", None),
                }
            )


def compare(
    runners: list[Runner],
    *,
    repeats: int = 3,
    timeout: float = 600,
    server: Callable[[], ServerProcess] | None = None,
    warmup: bool = True,
    show: Callable[[str], None] = print,
) -> dict[str, list[Run]]:
    """Warm each runner up once (untimed), then ``repeats`` rounds with the order rotated by one
    each round. With ``server``, every run gets a fresh server (its URL is the target's first
    argument after the stopwatch) and the server's ``stats()`` land in ``details["server"]``."""
    runs: dict[str, list[Run]] = {runner.name: [] for runner in runners}

    def once(runner: Runner, args: tuple[Any, ...]) -> Run:
        if server is None:
            return run_isolated(runner.name, runner.target, args, timeout)
        with server() as running:
            run = run_isolated(runner.name, runner.target, (running.url, *args), timeout)
            run.details["server"] = running.stats()
        return run

    if warmup:
        for runner in runners:
            warm = once(
                runner, runner.warmup_args if runner.warmup_args is not None else runner.args
            )
            show(f"  warm-up {runner.name}: {warm.seconds:.2f} s{_error_note(warm)}")
    for round_ in range(repeats):
        shift = round_ % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            run = once(runner, runner.args)
            runs[runner.name].append(run)
            show(f"  round {round_ + 1} {runner.name}: {run.seconds:.2f} s{_error_note(run)}")
    return runs


def _error_note(run: Run) -> str:
    return f" [{run.error}]" if run.error else ""


def median_run(runs: list[Run]) -> Run:
    """The run with the median time (the lower middle one for an even count), so its details
    (requests, 429s) belong to a real run rather than to a mix of runs."""
    ordered = sorted(runs, key=lambda run: run.seconds)
    return ordered[(len(ordered) - 1) // 2]


def median_seconds(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def median_import(runs: list[Run]) -> float:
    return statistics.median(run.import_seconds for run in runs)


def installed(*modules: str) -> bool:
    """Whether a peer's modules import (checked in a subprocess-free way: find_spec)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(module) is not None for module in modules)
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def header(title: str) -> None:
    print(f"\n== {title}")


def print_machine(note: str = "") -> None:
    print(machine())
    print(f"Python executable: {sys.executable}" + (f"; {note}" if note else ""))
