"""embedify.bulk: planning within limits, the poll and resubmission decisions, and the runner
against an in-memory batch API (the provider's side is tested on the OpenAI loopback fake)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedify.bulk import BatchInfo, BatchLimits, BatchResult, Price, SupportsBatchAPI
from embedify.bulk.manifest import BATCH_MANIFEST, Manifest
from embedify.bulk.planning import (
    PlannedRequest,
    estimate_cost,
    plan_files,
    plan_requests,
    rows_of,
)
from embedify.bulk.runner import (
    INPUTS,
    MAX_BATCH_ATTEMPTS,
    ONLINE_RESUBMIT_MAX_INPUTS,
    RESULTS,
    BulkJob,
    poll_delay,
    resubmission_route,
)
from embedify.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    InvalidRequestError,
    TransientError,
)

LIMITS = BatchLimits(
    requests_per_file=3, bytes_per_file=10_000, inputs_per_request=4, inputs_per_batch=10
)


def vector(text: str) -> np.ndarray[Any, Any]:
    seed = sum(text.encode())
    return np.random.default_rng(seed).standard_normal(4).astype(np.float32)


# -- planning -----------------------------------------------------------------------------------


def test_requests_respect_inputs_tokens_and_parts() -> None:
    limits = BatchLimits(10, 10_000, inputs_per_request=4, tokens_per_request=10)
    requests = plan_requests([3] * 7 + [20] + [1] * 5, part_rows=5, limits=limits)
    spans = [(r.part, r.start, r.stop) for r in requests]
    # 10 tokens at most (3+3+3), never across a part boundary (rows 5 and 10), the over-long
    # input alone, 4 inputs at most
    assert spans == [(0, 0, 3), (0, 3, 5), (1, 5, 7), (1, 7, 8), (1, 8, 10), (2, 10, 13)]
    assert [r.tokens for r in requests] == [9, 6, 6, 20, 2, 3]
    wide = BatchLimits(10, 10_000, inputs_per_request=4)
    assert [r.rows for r in plan_requests([1] * 10, part_rows=100, limits=wide)] == [4, 4, 2]
    assert all(rows_of(r.custom_id) == (r.part, r.start, r.stop) for r in requests)


def test_files_split_on_requests_bytes_and_inputs_per_batch() -> None:
    requests = [PlannedRequest(0, 4 * i, 4 * i + 4, 1) for i in range(7)]
    by_count = plan_files(requests, lambda r: 10, LIMITS)  # 10 inputs per batch: 2 requests
    assert [len(f) for f in by_count] == [2, 2, 2, 1]
    wide = BatchLimits(requests_per_file=3, bytes_per_file=25, inputs_per_request=4)
    assert [len(f) for f in plan_files(requests, lambda r: 10, wide)] == [2, 2, 2, 1]
    many = BatchLimits(requests_per_file=3, bytes_per_file=10_000, inputs_per_request=4)
    assert [len(f) for f in plan_files(requests, lambda r: 10, many)] == [3, 3, 1]
    with pytest.raises(ConfigurationError, match="more than a batch file may hold"):
        plan_files(requests, lambda r: 30, wide)


def test_cost_and_decisions() -> None:
    cost = estimate_cost(1_000_000_000, Price(online=0.02, batch=0.01))
    assert (cost.online, cost.batch, cost.saving) == (20.0, 10.0, 10.0)
    assert poll_delay(60, 0, None, 0.5) == 60
    assert poll_delay(1, 3, None, 1.0) == 2.0  # backoff from 0.5 s, doubled twice
    assert poll_delay(1, 1, 30, 0.0) == 30  # the server's wait, when it names one
    assert resubmission_route(50_000, 0) == "batch"  # the first submission
    assert resubmission_route(ONLINE_RESUBMIT_MAX_INPUTS, 1) == "online"
    assert resubmission_route(ONLINE_RESUBMIT_MAX_INPUTS + 1, 1) == "batch"
    assert resubmission_route(ONLINE_RESUBMIT_MAX_INPUTS + 1, MAX_BATCH_ATTEMPTS) == "online"
    assert resubmission_route(1, 1, online_max_inputs=0) == "batch"
    with pytest.raises(ConfigurationError, match="not written by embedify"):
        rows_of("request-1")


# -- an in-memory batch API ---------------------------------------------------------------------


class Crash(Exception):
    """Stands for kill -9 at a stage."""


@dataclass
class MemoryBatchAPI:
    """Batches that finish at the second retrieve; faults by field."""

    limits: BatchLimits = LIMITS
    price: Price | None = None
    dimension: int | None = 4
    expire_first: int = 0  # these first batches expire with their first request done
    fail_once: set[str] = field(default_factory=set)
    wrong_width: set[str] = field(default_factory=set)  # answered once with 5-wide vectors
    refuse_line: int | None = None  # the first batch fails validation at this line
    poll_errors: int = 0  # the first retrieves raise a transient error
    crash_after: str | None = None  # "upload", "create", "retrieve", "download": once
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: int = 0
    lines_made: int = 0
    uploaded: list[bytes] = field(default_factory=list)

    def request_line(self, custom_id: str, texts: list[str]) -> bytes:
        self.lines_made += 1
        return json.dumps({"custom_id": custom_id, "input": texts}).encode() + b"\n"

    def _crash(self, stage: str) -> None:
        if self.crash_after == stage:
            self.crash_after = None
            raise Crash(stage)

    def upload(self, name: str, content: bytes) -> str:
        file_id = f"file-{len(self.files)}"
        self.files[file_id] = content
        self.uploaded.append(content)
        self._crash("upload")
        return file_id

    def create(self, input_file_id: str) -> BatchInfo:
        self.created += 1
        batch_id = f"batch-{self.created}"
        self.batches[batch_id] = {"file": input_file_id, "polls": 0, "status": "validating"}
        self._crash("create")
        return BatchInfo(batch_id, "validating", input_file_id)

    def find(self, input_file_id: str) -> BatchInfo | None:
        found = [i for i, b in self.batches.items() if b["file"] == input_file_id]
        return self.retrieve(found[0]) if found else None

    def retrieve(self, batch_id: str) -> BatchInfo:
        if self.poll_errors:
            self.poll_errors -= 1
            raise TransientError("503 from the batches endpoint", status=503)
        batch = self.batches[batch_id]
        batch["polls"] += 1
        number = int(batch_id.split("-")[1])
        if batch["polls"] == 2 and batch["status"] == "validating":
            self._finish(batch_id, batch, number)
        if batch["polls"] >= 2:
            self._crash("retrieve")
        return BatchInfo(
            batch_id,
            batch["status"],
            batch["file"],
            output_file_id=batch.get("output"),
            errors=tuple(batch.get("errors", ())),
        )

    def _finish(self, batch_id: str, batch: dict[str, Any], number: int) -> None:
        lines = [json.loads(raw) for raw in self.files[batch["file"]].splitlines()]
        if self.refuse_line is not None and number == 1:
            batch["status"] = "failed"
            batch["errors"] = [(self.refuse_line, "invalid_json_line: not JSON")]
            return
        expire = number <= self.expire_first
        done = lines[:1] if expire else lines
        out = []
        for line in done:
            if line["custom_id"] in self.fail_once:
                self.fail_once.discard(line["custom_id"])
                out.append({"custom_id": line["custom_id"], "error": "server_error"})
            elif line["custom_id"] in self.wrong_width:
                self.wrong_width.discard(line["custom_id"])
                out.append({"custom_id": line["custom_id"], "texts": line["input"], "wide": True})
            else:
                out.append({"custom_id": line["custom_id"], "texts": line["input"]})
        random.Random(number).shuffle(out)
        self.files[f"out-{batch_id}"] = "\n".join(json.dumps(o) for o in out).encode()
        batch["output"] = f"out-{batch_id}"
        batch["status"] = "expired" if expire else "completed"

    def download(self, file_id: str) -> bytes:
        self._crash("download")
        return self.files[file_id]

    def cancel(self, batch_id: str) -> BatchInfo:
        self.batches[batch_id]["status"] = "cancelled"
        return self.retrieve(batch_id)

    def parse_results(self, content: bytes) -> Iterator[BatchResult]:
        for raw in content.splitlines():
            line = json.loads(raw)
            if "texts" in line:
                vectors = np.stack([vector(text) for text in line["texts"]])
                if line.get("wide"):
                    vectors = np.hstack([vectors, vectors[:, :1]])
                yield BatchResult(line["custom_id"], vectors)
            else:
                yield BatchResult(line["custom_id"], None, error=line["error"])


@dataclass
class FakeClock:
    """Time that passes only when the job sleeps."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


TEXTS = [f"text number {i}" for i in range(23)]
PART_ROWS = 10


@dataclass
class Online:
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, texts: list[str]) -> np.ndarray[Any, Any]:
        self.calls.append(texts)
        return np.stack([vector(text) for text in texts])


def job(api: MemoryBatchAPI, folder: Path, online: Online | None = None, **extra: Any) -> BulkJob:
    clock = FakeClock()
    requests = plan_requests([1] * len(TEXTS), PART_ROWS, api.limits)
    return BulkJob(
        api,
        TEXTS,
        requests,
        folder,
        online=online or Online(),
        poll_interval=5.0,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
        **extra,
    )


def all_vectors(bulk: BulkJob) -> np.ndarray[Any, Any]:
    parts = sorted({request.part for request in bulk.requests})
    return np.concatenate([bulk.part_vectors(part) for part in parts])


EXPECTED = np.stack([vector(text) for text in TEXTS])


def test_happy_path_matches_shuffled_lines_by_custom_id(tmp_path: Path) -> None:
    api = MemoryBatchAPI()
    bulk = job(api, tmp_path)
    report = bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    # parts of 10 rows, 4 inputs a request: 3 + 3 + 1 requests; 10 inputs a batch: 3 batches
    assert [r.custom_id for r in bulk.requests][2:4] == [
        "part-000000-rows-8-10",
        "part-000001-rows-10-14",
    ]
    assert (report.rows, report.batches, report.retried, report.online) == (23, 3, 0, 0)
    assert api.created == 3
    manifest = Manifest.open(tmp_path)
    assert [record.stage for record in manifest.batches] == ["finished"] * 3
    # each line encoded once, into the file that is uploaded; the files go once uploaded
    assert api.lines_made == len(bulk.requests) == 7
    first = [api.request_line(r.custom_id, TEXTS[r.start : r.stop]) for r in bulk.requests[:3]]
    assert api.uploaded[0] == b"".join(first)
    assert not (tmp_path / INPUTS).exists()


def test_failed_requests_go_online_when_few(tmp_path: Path) -> None:
    api = MemoryBatchAPI(fail_once={"part-000001-rows-14-18"})
    online = Online()
    bulk = job(api, tmp_path, online)
    report = bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert online.calls == [TEXTS[14:18]]
    assert (report.batches, report.retried, report.online) == (3, 1, 1)


def test_an_expired_batch_is_resubmitted_in_a_new_batch_when_many_remain(tmp_path: Path) -> None:
    api = MemoryBatchAPI(expire_first=1)
    online = Online()
    bulk = job(api, tmp_path, online, online_resubmit_max_inputs=0)
    report = bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert online.calls == []
    assert api.created == 4  # the expired batch's two unfinished requests went in a fourth
    assert report.retried == 2


def test_an_answer_of_another_width_is_a_failed_request(tmp_path: Path) -> None:
    api = MemoryBatchAPI(wrong_width={"part-000001-rows-14-18"})
    online = Online()
    bulk = job(api, tmp_path, online)
    report = bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert online.calls == [TEXTS[14:18]]  # few: online
    assert (report.retried, report.online) == (1, 1)
    api = MemoryBatchAPI(wrong_width={"part-000001-rows-14-18"})
    online = Online()
    bulk = job(api, tmp_path / "batch", online, online_resubmit_max_inputs=0)
    bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert (online.calls, api.created) == ([], 4)  # many: a new batch


def test_online_answers_correct_a_width_learned_from_a_wrong_first_answer(tmp_path: Path) -> None:
    first_batch = {"part-000000-rows-0-4", "part-000000-rows-4-8", "part-000000-rows-8-10"}
    api = MemoryBatchAPI(dimension=None, wrong_width=set(first_batch))
    online = Online()
    bulk = job(api, tmp_path, online)
    bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    # the first batch's answers (5 wide) set the width, so the others' went online; the online
    # answers (4 wide) corrected it, and the first batch's requests went online too
    assert online.calls == [TEXTS[10:23], TEXTS[0:10]]
    assert Manifest.open(tmp_path).dimension == 4


def test_online_answers_of_another_width_than_declared_stop_the_job(tmp_path: Path) -> None:
    with pytest.raises(BadResponseError, match="of 4 dimensions, but the batch API asks for 5"):
        job(MemoryBatchAPI(dimension=5), tmp_path).run()  # 4-wide answers: all sent online


@pytest.mark.parametrize("declared", [4, None])
def test_a_kept_result_of_another_width_is_sent_again_by_a_rerun(
    tmp_path: Path, declared: int | None
) -> None:
    job(MemoryBatchAPI(), tmp_path).run()
    # an older version kept a 5-wide answer, and recorded no width
    np.save(tmp_path / RESULTS / "part-000001-rows-14-18.npy", np.zeros((4, 5), np.float32))
    manifest = json.loads((tmp_path / BATCH_MANIFEST).read_text())
    del manifest["dimension"]
    (tmp_path / BATCH_MANIFEST).write_text(json.dumps(manifest))
    online = Online()
    bulk = job(MemoryBatchAPI(dimension=declared), tmp_path, online)
    bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert online.calls == [TEXTS[14:18]]


def test_a_folder_without_input_files_still_uploads(tmp_path: Path) -> None:
    api = MemoryBatchAPI(crash_after="upload")
    with pytest.raises(Crash):
        job(api, tmp_path).run()
    for path in (tmp_path / INPUTS).iterdir():  # as an older version left its folder
        path.unlink()
    bulk = job(api, tmp_path)
    bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert api.uploaded[1] == api.uploaded[0]


def test_a_refused_line_is_named(tmp_path: Path) -> None:
    api = MemoryBatchAPI(refuse_line=2)
    with pytest.raises(InvalidRequestError, match=r"line 2 \(request part-000000-rows-4-8\)"):
        job(api, tmp_path).run()


def test_polls_keep_the_interval_and_back_off_on_errors(tmp_path: Path) -> None:
    api = MemoryBatchAPI(poll_errors=4)
    clock = FakeClock()
    bulk = job(api, tmp_path)
    bulk.sleep = clock.sleep
    bulk.run()
    # four failed polls: backoff 0.5, 1, 2, 4 s, never under the 5 s interval; then the interval
    assert clock.slept[:4] == [5.0, 5.0, 5.0, 5.0]
    api = MemoryBatchAPI(poll_errors=6)
    clock = FakeClock()
    bulk = job(api, tmp_path / "again")
    bulk.sleep = clock.sleep
    bulk.run()
    assert clock.slept[4:6] == [8.0, 16.0]  # past the interval, the backoff shows
    assert all(delay == 5.0 for delay in clock.slept[6:])


def test_a_permanent_poll_error_stops_at_once(tmp_path: Path) -> None:
    class Refusing(MemoryBatchAPI):
        def retrieve(self, batch_id: str) -> BatchInfo:
            raise AuthenticationError("401: bad key", status=401)

    with pytest.raises(AuthenticationError):
        job(Refusing(), tmp_path).run()


@pytest.mark.parametrize("stage", ["upload", "create", "retrieve", "download"])
def test_a_crash_at_any_stage_resumes_without_a_second_batch(tmp_path: Path, stage: str) -> None:
    api = MemoryBatchAPI(crash_after=stage)
    with pytest.raises(Crash):
        job(api, tmp_path).run()
    bulk = job(api, tmp_path)  # a new process: only the folder is left
    report = bulk.run()
    np.testing.assert_array_equal(all_vectors(bulk), EXPECTED)
    assert api.created == 3, "a batch was created twice"
    assert report.batches == 3


def test_the_manifest_is_replaced_whole(tmp_path: Path) -> None:
    manifest = Manifest.open(tmp_path)
    manifest.online.append("part-000000-rows-0-4")
    manifest.save()
    assert json.loads((tmp_path / BATCH_MANIFEST).read_text())["online"] == ["part-000000-rows-0-4"]
    assert [path.name for path in tmp_path.iterdir()] == [BATCH_MANIFEST]  # no temp left
    (tmp_path / BATCH_MANIFEST).write_text("{")
    with pytest.raises(ConfigurationError, match="is damaged"):
        Manifest.open(tmp_path)


def test_another_plan_is_refused(tmp_path: Path) -> None:
    job(MemoryBatchAPI(), tmp_path).run()
    with pytest.raises(ConfigurationError, match="another plan"):
        BulkJob(
            MemoryBatchAPI(),
            TEXTS,
            plan_requests([1] * len(TEXTS), 7, LIMITS),
            tmp_path,
            online=Online(),
        )


def test_the_contract_is_a_runtime_protocol() -> None:
    class WithBatches:
        def batch_api(self) -> MemoryBatchAPI:
            return MemoryBatchAPI()

    assert isinstance(WithBatches(), SupportsBatchAPI)
    assert not isinstance(object(), SupportsBatchAPI)
