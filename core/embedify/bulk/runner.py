"""Run a bulk job through a batch API: submit, poll, collect, resubmit; resumable.

:class:`BulkJob` takes the job's texts and planned requests (:mod:`embedify.bulk.planning`)
and leaves each request's vectors in the output folder (``_batch_results/<custom_id>.npy``,
written aside then renamed), from which the caller assembles its parts. Its state is the
folder's :class:`~embedify.bulk.manifest.Manifest`, so a killed run, started again, goes on
polling the batches it created and sends nothing twice. Each request line is encoded once, into
its input file (``_batch_inputs/``, deleted once uploaded). Rules:

- Poll every ``poll_interval`` seconds; a poll that fails with a transient error (5xx, 429,
  timeout) waits the engine's backoff (:func:`embedify.engine.policy.backoff_delay`, at least
  the interval) and stops the job after :data:`MAX_POLL_ERRORS` in a row. Permanent errors (a bad
  key) stop it at once.
- Output lines are matched to requests by ``custom_id``, in whatever order they come. A line
  with another number of vectors than its request's rows, or of another width than the job's
  (the batch API's :attr:`~embedify.bulk.api.BatchAPI.dimension`, else the first kept), is a
  failed request; so is a kept result of another width, found when a run starts (an older
  run's). Online answers, checked by the engine, decide a width the batch API did not declare.
- Requests without vectors once their batch ended (failed lines, an ``expired`` or ``failed``
  batch) are sent again: in a new batch, or online through ``model.embed`` when they hold at
  most ``online_resubmit_max_inputs`` inputs (:data:`ONLINE_RESUBMIT_MAX_INPUTS`), or were
  already sent in :data:`MAX_BATCH_ATTEMPTS` batches (online, the engine's handling applies:
  retries, truncation, or an error naming the input).
- A batch the provider refused for lines of its input file stops the job, naming the lines; a
  batch someone cancelled stops it too, and a rerun sends its unfinished requests again.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from embedify.bulk.api import BatchAPI, BatchInfo
from embedify.bulk.manifest import BatchRecord, Manifest
from embedify.bulk.planning import FilePacker, PlannedRequest
from embedify.engine.policy import backoff_delay
from embedify.errors import (
    BadResponseError,
    ConfigurationError,
    EmbedifyError,
    InvalidRequestError,
    ProviderError,
    TransientError,
)

#: Resubmissions of at most this many inputs go online: a new batch may take its whole 24-hour
#: window to return a few rows that cost cents at the online price.
ONLINE_RESUBMIT_MAX_INPUTS = 1_000
#: Batches one request is sent in before it goes online whatever the count.
MAX_BATCH_ATTEMPTS = 3
#: Failed polls in a row after which the job stops (the batches keep running; rerun to follow).
MAX_POLL_ERRORS = 10
RESULTS = "_batch_results"
INPUTS = "_batch_inputs"


def poll_delay(interval: float, errors: int, retry_after: float | None, jitter: float) -> float:
    """Seconds before the next poll after ``errors`` failed polls in a row: the interval, or the
    engine's backoff when that is longer."""
    if errors == 0:
        return interval
    return max(interval, backoff_delay(errors, retry_after, jitter))


def resubmission_route(
    pending_inputs: int, attempts: int, online_max_inputs: int = ONLINE_RESUBMIT_MAX_INPUTS
) -> str:
    """``"online"`` or ``"batch"`` for requests already sent ``attempts`` times (at most)."""
    if attempts >= MAX_BATCH_ATTEMPTS:
        return "online"
    if attempts > 0 and pending_inputs <= online_max_inputs:
        return "online"
    return "batch"


@dataclass(frozen=True)
class BulkReport:
    """What the job did, over all its runs."""

    rows: int
    tokens: int
    batches: int
    retried: int  # request submissions after the first, in batches or online
    online: int  # requests embedded online in the end


class BulkJob:
    def __init__(
        self,
        api: BatchAPI,
        texts: Sequence[str],
        requests: Sequence[PlannedRequest],
        folder: Path,
        *,
        online: Callable[[list[str]], np.ndarray[Any, Any]],
        poll_interval: float = 60.0,
        done_parts: Collection[int] = (),
        online_resubmit_max_inputs: int = ONLINE_RESUBMIT_MAX_INPUTS,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        """``online`` embeds texts through the engine; ``done_parts``: parts already written
        (their requests need nothing more); resubmissions of at most
        ``online_resubmit_max_inputs`` inputs go online."""
        self.api, self.texts, self.requests = api, texts, list(requests)
        self.by_id = {request.custom_id: request for request in self.requests}
        self.folder, self.results, self.inputs = folder, folder / RESULTS, folder / INPUTS
        self.online, self.poll_interval, self.done_parts = online, poll_interval, done_parts
        self.online_resubmit_max_inputs = online_resubmit_max_inputs
        self.sleep, self.jitter, self.log = sleep, jitter, log
        self.manifest = Manifest.open(folder)
        self.declared_dimension = api.dimension
        if self.declared_dimension is not None:
            self.manifest.dimension = self.declared_dimension
        unknown = [i for r in self.manifest.batches for i in r.requests if i not in self.by_id]
        if unknown:
            raise ConfigurationError(
                f"{self.manifest.path} follows batches of another plan (request {unknown[0]}); "
                "rerun with the same input and --part-rows, or use a new output folder."
            )
        self.cancelled: list[str] = []

    # -- the job -----------------------------------------------------------------------------

    def run(self) -> BulkReport:
        self.results.mkdir(parents=True, exist_ok=True)
        self._forget_other_widths()
        while True:
            self._finish_submissions()
            if any(record.stage == "created" for record in self.manifest.batches):
                self._poll()
                if self.cancelled:
                    raise EmbedifyError(
                        f"batch {', '.join(self.cancelled)} was cancelled; run the same command "
                        "again to send its unfinished requests in a new batch."
                    )
                continue
            pending = [request for request in self.requests if not self.has_result(request)]
            if not pending:
                return self.report()
            self._submit(pending)

    def report(self) -> BulkReport:
        attempts = self.manifest.attempts()
        sent_online = set(self.manifest.online)
        retried = sum(count - 1 for count in attempts.values()) + sum(
            1 for custom_id in sent_online if custom_id in attempts
        )
        return BulkReport(
            rows=len(self.texts),
            tokens=sum(request.tokens for request in self.requests),
            batches=sum(1 for record in self.manifest.batches if record.batch_id),
            retried=retried,
            online=len(sent_online),
        )

    # -- results -----------------------------------------------------------------------------

    def _result_path(self, custom_id: str) -> Path:
        return self.results / f"{custom_id}.npy"

    def has_result(self, request: PlannedRequest) -> bool:
        return request.part in self.done_parts or self._result_path(request.custom_id).exists()

    def _keep(self, request: PlannedRequest, vectors: np.ndarray[Any, Any]) -> None:
        final = self._result_path(request.custom_id)
        temporary = final.with_name(f".{final.stem}.tmp.npy")
        np.save(temporary, np.asarray(vectors, dtype=np.float32))
        os.replace(temporary, final)

    def _forget_other_widths(self) -> None:
        """Delete kept results that are not ``(rows, the job's width)``, so they are sent again.
        With no width declared or recorded (an older run's folder), the most common one kept
        is the job's."""
        shapes: dict[str, tuple[int, ...]] = {}
        for request in self.requests:
            path = self._result_path(request.custom_id)
            if request.part not in self.done_parts and path.exists():
                shapes[request.custom_id] = np.load(path, mmap_mode="r").shape
        if self.manifest.dimension is None and shapes:
            widths = Counter(shape[-1] for shape in shapes.values())
            self.manifest.dimension = widths.most_common(1)[0][0]
            self.manifest.save()
        for custom_id, shape in shapes.items():
            if shape != (self.by_id[custom_id].rows, self.manifest.dimension):
                self.log(f"result {custom_id} has shape {shape}: sending it again")
                self._result_path(custom_id).unlink()

    def _has_job_width(self, vectors: np.ndarray[Any, Any]) -> bool:
        """Whether a batch answer has the job's width; the first one kept sets it when the
        batch API declared none (recorded with the batch's stage)."""
        if self.manifest.dimension is None:
            self.manifest.dimension = int(vectors.shape[1])
        return bool(vectors.shape[1] == self.manifest.dimension)

    def part_vectors(self, part: int) -> np.ndarray[Any, Any]:
        """The vectors of ``part``'s rows, in order."""
        pieces = [
            np.load(self._result_path(request.custom_id))
            for request in self.requests
            if request.part == part
        ]
        return np.concatenate(pieces)

    def forget_part(self, part: int) -> None:
        """Delete ``part``'s results once the part is written."""
        for request in self.requests:
            if request.part == part:
                self._result_path(request.custom_id).unlink(missing_ok=True)

    # -- submitting --------------------------------------------------------------------------

    def _submit(self, pending: list[PlannedRequest]) -> None:
        attempts = self.manifest.attempts()
        tried = max(attempts.get(request.custom_id, 0) for request in pending)
        inputs = sum(request.rows for request in pending)
        if resubmission_route(inputs, tried, self.online_resubmit_max_inputs) == "online":
            self._embed_online(pending)
            return
        again = [r for r in pending if attempts.get(r.custom_id, 0) >= MAX_BATCH_ATTEMPTS]
        if again:
            self._embed_online(again)
        batched = [r for r in pending if attempts.get(r.custom_id, 0) < MAX_BATCH_ATTEMPTS]
        records = self._write_input_files(batched)
        self.manifest.batches += records
        self.manifest.save()  # planned, their files written, before anything is sent
        self.log(f"sending {len(batched):,} requests in {len(records)} batch files")

    def _line(self, request: PlannedRequest) -> bytes:
        return self.api.request_line(
            request.custom_id, list(self.texts[request.start : request.stop])
        )

    def _input_path(self, index: int) -> Path:
        return self.inputs / f"embedify-batch-{index:04d}.jsonl"

    def _write_input_files(self, requests: list[PlannedRequest]) -> list[BatchRecord]:
        """Encode each request's line once, straight into the input file it is placed in (the
        upload sends these files); the records of the files, in order."""
        self.inputs.mkdir(parents=True, exist_ok=True)
        for stale in self.inputs.iterdir():  # written before a crash, never recorded
            stale.unlink()
        packer = FilePacker(self.api.limits)
        first = len(self.manifest.batches)
        records: list[BatchRecord] = []
        out: IO[bytes] | None = None
        try:
            for request in requests:
                line = self._line(request)
                if packer.place(request, len(line)) == len(records):
                    _close_synced(out)
                    records.append(BatchRecord(first + len(records), []))
                    out = self._input_path(records[-1].index).open("wb")
                assert out is not None  # the first request opens the first file
                records[-1].requests.append(request.custom_id)
                out.write(line)
        finally:
            _close_synced(out)
        return records

    def _finish_submissions(self) -> None:
        """Upload the planned files and create the uploaded files' batches, recording each."""
        for record in self.manifest.batches:
            if record.stage == "planned":
                path = self._input_path(record.index)
                content = (  # a folder of an older version holds no input files
                    path.read_bytes()
                    if path.exists()
                    else b"".join(self._line(self.by_id[i]) for i in record.requests)
                )
                record.input_file_id = self.api.upload(path.name, content)
                del content  # not held while the next file is read
                record.stage = "uploaded"
                self.manifest.save()
                path.unlink(missing_ok=True)
            if record.stage == "uploaded":
                assert record.input_file_id is not None
                batch = self.api.find(record.input_file_id) or self.api.create(record.input_file_id)
                record.batch_id, record.status, record.stage = batch.id, batch.status, "created"
                self.manifest.save()
                self.log(f"batch {batch.id}: {len(record.requests):,} requests")
        if self.inputs.exists() and not any(self.inputs.iterdir()):
            self.inputs.rmdir()

    def _embed_online(self, requests: list[PlannedRequest]) -> None:
        self.log(f"embedding {len(requests):,} requests online")
        texts = [text for r in requests for text in self.texts[r.start : r.stop]]
        vectors = self.online(texts)
        width = int(vectors.shape[1])
        relearned = width != self.manifest.dimension
        if relearned and self.declared_dimension is not None:
            raise BadResponseError(
                f"online answers hold vectors of {width} dimensions, but the batch API asks "
                f"for {self.declared_dimension}; the model's plugin declares a wrong dimension."
            )
        self.manifest.dimension = width  # checked by the engine: the job's width
        offset = 0
        for request in requests:
            self._keep(request, vectors[offset : offset + request.rows])
            offset += request.rows
        self.manifest.online.extend(request.custom_id for request in requests)
        self.manifest.save()
        if relearned:
            self._forget_other_widths()  # kept batch answers set a width the engine refutes

    # -- polling and collecting --------------------------------------------------------------

    def _poll(self) -> None:
        """Poll the created batches until every one has finished and been collected."""
        errors = 0
        while True:
            active = [record for record in self.manifest.batches if record.stage == "created"]
            if not active:
                return
            retry_after: float | None = None
            try:
                for record in active:
                    assert record.batch_id is not None
                    batch = self.api.retrieve(record.batch_id)
                    if batch.status != record.status:
                        record.status = batch.status
                        self.manifest.save()
                        self.log(f"batch {batch.id}: {batch.status}")
                    if batch.finished:
                        self._collect(record, batch)
                errors = 0
            except TransientError as error:
                errors += 1
                if errors >= MAX_POLL_ERRORS:
                    raise
                retry_after = error.retry_after
                self.log(f"polling failed ({error}); trying again")
            if any(record.stage == "created" for record in self.manifest.batches):
                self.sleep(poll_delay(self.poll_interval, errors, retry_after, self.jitter()))

    def _collect(self, record: BatchRecord, batch: BatchInfo) -> None:
        refused = [(line, message) for line, message in batch.errors if line is not None]
        if refused:
            shown = "; ".join(
                f"line {line} ({self._request_on(record, line)}): {message}"
                for line, message in refused[:5]
            )
            raise InvalidRequestError(
                f"batch {batch.id} was refused for lines of its input file: {shown}"
            )
        mine = set(record.requests)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            for result in self.api.parse_results(self.api.download(file_id)):
                request = self.by_id.get(result.custom_id)
                if request is None or result.custom_id not in mine or result.vectors is None:
                    continue
                if len(result.vectors) != request.rows or not self._has_job_width(result.vectors):
                    continue  # a wrong answer is a failed request: sent again
                self._keep(request, result.vectors)
        record.failed = sum(1 for i in record.requests if not self.has_result(self.by_id[i]))
        record.stage = "finished"
        self.manifest.save()
        if batch.status == "cancelled":
            self.cancelled.append(batch.id)
        if record.failed:
            self.log(f"batch {batch.id} ({batch.status}): {record.failed} requests to send again")

    @staticmethod
    def _request_on(record: BatchRecord, line: int) -> str:
        inside = 1 <= line <= len(record.requests)
        return f"request {record.requests[line - 1]}" if inside else "no such line"


def _close_synced(out: IO[bytes] | None) -> None:
    """Close an input file with its bytes on disk: the manifest that lists it is saved next."""
    if out is not None:
        out.flush()
        os.fsync(out.fileno())
        out.close()


def cancel_batches(api: BatchAPI, folder: Path) -> list[BatchInfo]:
    """Cancel the folder's batches that have not finished; what the provider says of each."""
    manifest = Manifest.open(folder)
    cancelled = []
    for record in manifest.batches:
        if record.stage == "created" and record.batch_id is not None:
            try:
                batch = api.cancel(record.batch_id)
            except ProviderError as error:
                raise EmbedifyError(f"cannot cancel batch {record.batch_id}: {error}") from None
            record.status = batch.status
            cancelled.append(batch)
    manifest.save()
    return cancelled
