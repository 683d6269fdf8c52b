"""The executor when storing an answer fails: the job stops with the error, nothing is lost
silently and no task exception goes unretrieved (pyproject turns those into test errors)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import embedify
from embedify.engine import policy
from embedify.engine.executor import Executor, Work
from embedify.engine.pacing import Pacer
from embedify.engine.sizing import RequestSizer
from embedify.errors import PermanentError, StorageError
from embedify.report import ItemReport, Report

pytestmark = pytest.mark.faults


def executor(on_done: object, count: int = 6) -> Executor:
    model = embedify.get_model("fake:8", batch_size=2, cache=False)
    work = Work(texts={i: f"text {i}" for i in range(count)}, tokens=dict.fromkeys(range(count), 2))
    return Executor(
        model,
        "document",
        work,
        Report(items=[ItemReport() for _ in range(count)]),
        pacer=Pacer(start_in_flight=1, max_in_flight=1, now=time.monotonic()),
        sizer=RequestSizer(adaptive=False, timeout=None),
        settings=policy.Settings(
            max_retries=0, rate_limit_timeout=10, truncate="error", max_tokens_per_input=None
        ),
        provider_dimension=8,
        max_inputs=2,
        on_done=on_done,  # type: ignore[arg-type]
    )


async def test_a_store_that_raises_fails_the_inputs_it_did_not_store() -> None:
    stored: list[int] = []

    def store(batch: list[int], vectors: np.ndarray) -> None:
        if stored:
            raise RuntimeError("no room")
        stored.extend(batch)

    failures = await executor(store).run(list(range(6)))
    assert len(stored) == 2
    assert set(failures) == set(range(6)) - set(stored)
    error = next(iter(failures.values()))
    assert isinstance(error, PermanentError)
    assert "RuntimeError: no room" in str(error)


async def test_a_store_that_raises_an_embedify_error_stops_the_job_with_it() -> None:
    def store(batch: list[int], vectors: np.ndarray) -> None:
        raise StorageError("cache.sqlite3 is damaged: delete it", path="cache.sqlite3")

    with pytest.raises(StorageError, match="damaged"):
        await executor(store).run(list(range(6)))
