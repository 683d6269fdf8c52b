"""``embed-dataset --via batch``: the input through the provider's batch API, written as the
online path writes it (the same parts, columns and row order).

The texts of the column are held in memory (a million passages of a few hundred characters are
a few hundred MB); each request's vectors wait on disk in the output folder until its part is
complete, and are deleted once the part is written. The job's batches are followed by
:class:`embedify.bulk.runner.BulkJob`, whose manifest in the output folder makes a rerun
resume them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedify.bulk import BatchAPI, Price, batch_api_of
from embedify.bulk.planning import (
    BulkPlan,
    Cost,
    PlannedRequest,
    dollars,
    estimate_cost,
    plan_files,
    plan_requests,
)
from embedify.bulk.runner import BulkJob, BulkReport
from embedify_ray.arrow import texts_of, vectors_to_arrow

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from embedify import EmbeddingModel
    from embedify.protocol import Role
    from embedify_ray.files import InputScan

#: Providers whose embedify plugin implements a batch API (named in the error for the others).
BATCH_PROVIDERS = ("openai",)


def batch_api_for(model: EmbeddingModel, price: Price | None = None) -> BatchAPI:
    """``model``'s batch API, with ``price`` instead of the plugin's own when given."""
    api = batch_api_of(model, list(BATCH_PROVIDERS))
    if price is not None:
        api.price = price
    return api


def read_texts(scan: InputScan, column: str, part_rows: int) -> list[str]:
    from embedify_ray.files import read_parts

    texts: list[str] = []
    for index, table in enumerate(read_parts(scan, part_rows)):
        texts += texts_of(table.select([column]), column, first_row=index * part_rows)
    return texts


def plan_job(
    model: EmbeddingModel, api: BatchAPI, texts: list[str], part_rows: int
) -> list[PlannedRequest]:
    """The job's requests, tokens counted as the model counts them (its tokenizer where it has
    one, else the engine's estimate)."""
    return plan_requests(model.count_tokens(texts), part_rows, api.limits)


def job_cost(api: BatchAPI, requests: list[PlannedRequest]) -> Cost | None:
    tokens = sum(request.tokens for request in requests)
    return estimate_cost(tokens, api.price) if api.price else None


@dataclass(frozen=True)
class BatchSummary:
    """The end report of a batch run: the job's numbers and its estimated cost."""

    job: BulkReport
    cost: Cost | None

    def summary(self) -> str:
        job = self.job
        line = (
            f"batch API: {job.rows:,} rows, {job.tokens:,} tokens, {job.batches} batches, "
            f"{job.retried} requests retried ({job.online} online)"
        )
        if self.cost is not None:
            cost = self.cost
            line += (
                f"; estimated cost {dollars(cost.batch)} (online {dollars(cost.online)}, "
                f"saved {dollars(cost.saving)})"
            )
        return line


def embed_in_batches(
    model: EmbeddingModel,
    api: BatchAPI,
    scan: InputScan,
    output: Path,
    done: Collection[int],
    *,
    column: str,
    output_column: str,
    role: Role,
    part_rows: int,
    poll_interval: float,
    write_part: Callable[[int, pa.Table], None],
    sleep: Callable[[float], None] = time.sleep,
) -> BatchSummary:
    """Run the job's batches to the end, then write each part not in ``done`` with
    ``write_part``: its rows and their vectors, as the online path writes it."""
    from embedify_ray.files import read_parts

    texts = read_texts(scan, column, part_rows)
    requests = plan_job(model, api, texts, part_rows)

    def embed_online(chunk: list[str]) -> np.ndarray[Any, Any]:
        vectors: np.ndarray[Any, Any] = model.embed(chunk, role)
        return vectors

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    job = BulkJob(
        api,
        texts,
        requests,
        output,
        online=embed_online,
        poll_interval=poll_interval,
        done_parts=done,
        sleep=sleep,
        log=log,
    )
    report = job.run()
    for index, table in enumerate(read_parts(scan, part_rows)):
        if index in done:
            continue
        vectors = vectors_to_arrow(job.part_vectors(index))
        write_part(index, table.append_column(output_column, vectors))
        job.forget_part(index)
    if not any(job.results.iterdir()):
        job.results.rmdir()
    return BatchSummary(report, job_cost(api, requests))


def dry_run_plan(
    input_path: Path,
    model: EmbeddingModel,
    api: BatchAPI,
    column: str,
    output_column: str,
    part_rows: int,
) -> BulkPlan:
    """The plan of ``embed-dataset --via batch`` for ``input_path``, sending nothing (its
    files are counted by encoding each line, which a run does again as it writes them)."""
    from embedify_ray.files import scan_input

    scan = scan_input(Path(input_path), column, output_column)
    texts = read_texts(scan, column, part_rows)
    requests = plan_job(model, api, texts, part_rows)
    files = plan_files(
        requests,
        lambda r: len(api.request_line(r.custom_id, texts[r.start : r.stop])),
        api.limits,
    )
    return BulkPlan(
        rows=len(texts),
        tokens=sum(request.tokens for request in requests),
        exact_tokens=bool(getattr(model, "exact_token_count", False)),
        requests=len(requests),
        files=len(files),
        cost=job_cost(api, requests),
    )
