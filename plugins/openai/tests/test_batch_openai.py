"""OpenAI's Batch API through the real ``openai`` SDK against the loopback fake: the fake's
Files and Batches semantics, and embedify's OpenAIBatchAPI driven by the bulk runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from embedify_openai.batch import OPENAI_BATCH_LIMITS, PRICES, OpenAIBatchAPI
from embedify_openai.testing import (
    FakeBatches,
    FakeOpenAI,
    FakeOpenAIServer,
    serve_fake_openai,
    vector_for,
)

import embedify
from embedify.bulk import BatchLimits, SupportsBatchAPI, batch_api_of
from embedify.bulk.planning import plan_requests
from embedify.bulk.runner import BulkJob
from embedify.errors import (
    AuthenticationError,
    ConfigurationError,
    EmbedifyError,
    InvalidRequestError,
)

MODEL = "text-embedding-3-small"
TEXTS = [f"passage {i} on topic {i % 5}" for i in range(30)]


def model_for(server: FakeOpenAIServer, **options: Any) -> Any:
    options = {"base_url": server.base_url, "api_key": server.api_key, **options}
    return embedify.get_model(f"openai:{MODEL}", **options)


def sdk(server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def lines(*requests: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(request).encode() + b"\n" for request in requests)


def request(custom_id: str, texts: list[str], **changes: Any) -> dict[str, Any]:
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": MODEL, "input": texts},
    }
    return {**line, **changes}


def expected(texts: list[str]) -> np.ndarray[Any, Any]:
    return np.stack([vector_for(MODEL, text) for text in texts])


# -- the fake, through the SDK ------------------------------------------------------------------


def test_a_batch_moves_through_its_states_and_answers_every_request_shuffled() -> None:
    with serve_fake_openai() as server:
        client = sdk(server)
        content = lines(*(request(f"r{i}", [text]) for i, text in enumerate(TEXTS)))
        uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
        assert (uploaded.purpose, uploaded.bytes) == ("batch", len(content))
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        seen = [batch.status] + [client.batches.retrieve(batch.id).status for _ in range(3)]
        assert seen == ["validating", "in_progress", "finalizing", "completed"]
        done = client.batches.retrieve(batch.id)
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed) == (30, 30)
        assert done.error_file_id is None and done.output_file_id is not None
        output = [
            json.loads(line)
            for line in client.files.content(done.output_file_id).content.splitlines()
        ]
        order = [line["custom_id"] for line in output]
        assert sorted(order, key=lambda c: int(c[1:])) == [f"r{i}" for i in range(30)]
        assert order != sorted(order, key=lambda c: int(c[1:])), "output lines not shuffled"
        first = next(line for line in output if line["custom_id"] == "r7")
        vector = first["response"]["body"]["data"][0]["embedding"]
        np.testing.assert_allclose(vector, vector_for(MODEL, TEXTS[7]), atol=1e-7)
        assert server.fake.batches.created == 1


def test_validation_names_each_bad_line() -> None:
    with serve_fake_openai() as server:
        client = sdk(server)
        content = (
            lines(
                request("a", ["x"]),
                request("a", ["y"]),
                request("b", ["z"], url="/v1/chat/completions"),
            )
            + b"not json\n"
        )
        uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        failed = client.batches.retrieve(batch.id)
        assert failed.status == "failed" and failed.errors is not None
        found = [(error.line, error.code) for error in failed.errors.data or []]
        assert found == [(2, "duplicate_custom_id"), (3, "invalid_url"), (4, "invalid_json_line")]


def test_limits_are_enforced_and_requests_answered_as_online() -> None:
    fake = FakeOpenAI(batches=FakeBatches(max_requests_per_file=2, max_file_bytes=400))
    with serve_fake_openai(fake) as server:
        client = sdk(server)
        with pytest.raises(openai.BadRequestError, match="File is too large"):
            client.files.create(file=("big.jsonl", b"x" * 401), purpose="batch")
        content = lines(request("a", ["x"]), request("b", [""]), request("c", ["z"]))
        uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        failed = client.batches.retrieve(batch.id)
        assert failed.errors is not None and failed.errors.data
        assert failed.errors.data[0].code == "too_many_requests"
        content = lines(request("a", ["x"]), request("b", [""]))
        uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        for _ in range(3):
            done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.error_file_id is not None
        error = json.loads(client.files.content(done.error_file_id).content)
        assert error["custom_id"] == "b"  # an empty input: the online endpoint's 400
        assert error["response"]["status_code"] == 400
        assert "'$.input' is invalid" in error["response"]["body"]["error"]["message"]


def test_an_expired_batch_keeps_half_and_reports_the_rest() -> None:
    with serve_fake_openai(FakeOpenAI(batches=FakeBatches(expire=1))) as server:
        api = OpenAIBatchAPI(model_for(server))
        content = b"".join(api.request_line(f"r{i}", [t]) for i, t in enumerate(TEXTS[:4]))
        batch = api.create(api.upload("in.jsonl", content))
        while not batch.finished:
            batch = api.retrieve(batch.id)
        assert (batch.status, batch.completed, batch.failed) == ("expired", 2, 2)
        assert batch.error_file_id is not None and batch.output_file_id is not None
        failures = list(api.parse_results(api.download(batch.error_file_id)))
        assert [r.vectors for r in failures] == [None, None]
        assert all("batch_expired" in (r.error or "") for r in failures)
        kept = {r.custom_id: r for r in api.parse_results(api.download(batch.output_file_id))}
        assert sorted(kept) == ["r0", "r1"]
        kept_vectors = kept["r1"].vectors
        assert kept_vectors is not None
        np.testing.assert_allclose(kept_vectors, expected(TEXTS[1:2]), atol=1e-7)


def test_cancel_moves_through_cancelling() -> None:
    with serve_fake_openai() as server:
        api = OpenAIBatchAPI(model_for(server))
        batch = api.create(api.upload("in.jsonl", api.request_line("r", ["x"])))
        assert api.cancel(batch.id).status == "cancelling"
        assert api.retrieve(batch.id).status == "cancelled"


# -- OpenAIBatchAPI ----------------------------------------------------------------------------


def test_options_the_batch_path_would_not_apply_are_refused() -> None:
    with serve_fake_openai() as server:
        with pytest.raises(ConfigurationError, match=r"precision='int8' would not be applied"):
            batch_api_of(model_for(server, precision="int8"))
        # OpenAI's own vectors are unit length and cut to `dimensions`: nothing left to apply
        assert batch_api_of(model_for(server, normalize=True, dimensions=256)).dimension == 256
        assert server.fake.batches.created == 0


def test_the_model_offers_its_batch_api_with_the_documented_limits() -> None:
    with serve_fake_openai() as server:
        model = model_for(server, dimensions=256)
        assert isinstance(model, SupportsBatchAPI)
        api = batch_api_of(model)
        assert api.limits == OPENAI_BATCH_LIMITS
        assert (api.limits.requests_per_file, api.limits.inputs_per_batch) == (50_000, 50_000)
        assert api.price == PRICES[MODEL]
        assert api.dimension == 256  # what each line asks for
        assert OpenAIBatchAPI(model_for(server)).dimension == 1536
        line = json.loads(api.request_line("part-000000-rows-0-1", ["hi"]))
        assert line["body"] == {
            "model": MODEL,
            "input": ["hi"],
            "encoding_format": "base64",
            "dimensions": 256,
        }
        assert (line["method"], line["url"]) == ("POST", "/v1/embeddings")


def test_sdk_errors_become_embedify_errors() -> None:
    with serve_fake_openai(FakeOpenAI(batches=FakeBatches(max_file_bytes=10))) as server:
        with pytest.raises(AuthenticationError):
            OpenAIBatchAPI(model_for(server, api_key="sk-wrong")).upload("in.jsonl", b"{}\n")
        with pytest.raises(InvalidRequestError, match="File is too large"):
            OpenAIBatchAPI(model_for(server)).upload("in.jsonl", b"x" * 11)


def test_find_returns_the_batch_made_from_a_file() -> None:
    with serve_fake_openai() as server:
        api = OpenAIBatchAPI(model_for(server))
        files = [api.upload(f"{i}.jsonl", api.request_line("r", ["x"])) for i in range(3)]
        made = [api.create(file_id) for file_id in files[:2]]
        found = api.find(files[0])
        assert found is not None and found.id == made[0].id
        assert api.find(files[2]) is None


def run_job(
    server: FakeOpenAIServer, folder: Path, api: OpenAIBatchAPI | None = None, **extra: Any
) -> Any:
    model = model_for(server)
    api = api or OpenAIBatchAPI(model)
    requests = plan_requests(model.count_tokens(TEXTS), 10, api.limits)
    job = BulkJob(
        api,
        TEXTS,
        requests,
        folder,
        online=lambda texts: model.embed(texts),
        poll_interval=0.0,
        sleep=lambda seconds: None,
        **extra,
    )
    report = job.run()
    vectors = np.concatenate([job.part_vectors(part) for part in range(3)])
    return report, vectors


def test_a_job_splits_files_at_the_limits_and_returns_every_row(tmp_path: Path) -> None:
    fake = FakeOpenAI(batches=FakeBatches(max_requests_per_file=2, max_batch_inputs=8))
    with serve_fake_openai(fake) as server:
        limits = BatchLimits(
            requests_per_file=2, bytes_per_file=10_000, inputs_per_request=4, inputs_per_batch=8
        )
        api = OpenAIBatchAPI(model_for(server), limits=limits)
        report, vectors = run_job(server, tmp_path, api)
        np.testing.assert_allclose(vectors, expected(TEXTS), atol=1e-7)
        # 3 parts of 10 rows, 4 inputs a request: 9 requests; 2 a file: 5 batches
        assert fake.batches.created == report.batches == 5
        assert all(b["status"] == "completed" for b in fake.batches.batches.values())


@pytest.mark.parametrize("fault", ["fail_once", "wrong_width"])
def test_failed_or_wrong_width_requests_are_resubmitted_online(tmp_path: Path, fault: str) -> None:
    """A request the batch failed (a 500 line), or answered with vectors of another width."""
    batches = FakeBatches(**{fault: frozenset({"part-000001-rows-10-20"})})
    with serve_fake_openai(FakeOpenAI(batches=batches)) as server:
        report, vectors = run_job(server, tmp_path)
        np.testing.assert_allclose(vectors, expected(TEXTS), atol=1e-7)
        assert (report.batches, report.retried, report.online) == (1, 1, 1)
        online = [e for e in server.fake.log if e["path"] == "/v1/embeddings"]
        assert [e["body"]["input"] for e in online] == [TEXTS[10:20]]


def test_an_expired_batch_is_resubmitted(tmp_path: Path) -> None:
    fake = FakeOpenAI(batches=FakeBatches(expire=1, fail=0))
    with serve_fake_openai(fake) as server:
        report, vectors = run_job(server, tmp_path)
        np.testing.assert_allclose(vectors, expected(TEXTS), atol=1e-7)
        assert [b["status"] for b in fake.batches.batches.values()] == ["expired"]
        assert report.retried == 2 and report.online == 2  # few left: online


def test_a_failed_batch_is_resubmitted_in_a_new_batch(tmp_path: Path) -> None:
    fake = FakeOpenAI(batches=FakeBatches(fail=1))
    with serve_fake_openai(fake) as server:
        report, vectors = run_job(server, tmp_path, online_resubmit_max_inputs=0)  # never online
        np.testing.assert_allclose(vectors, expected(TEXTS), atol=1e-7)
        assert [b["status"] for b in fake.batches.batches.values()] == ["failed", "completed"]
        assert fake.batches.batches["batch_000002"]["errors"]["data"][0]["line"] is None
        assert report.retried == 3


def test_a_cancelled_batch_stops_the_run_and_a_rerun_sends_the_rest(tmp_path: Path) -> None:
    with serve_fake_openai() as server:
        api = OpenAIBatchAPI(model_for(server))
        original = api.retrieve

        def cancel_first(batch_id: str) -> Any:
            if server.fake.batches.batches[batch_id]["status"] == "validating":
                api.cancel(batch_id)  # someone runs `embedify batches cancel` meanwhile
            return original(batch_id)

        api.retrieve = cancel_first  # type: ignore[method-assign]
        with pytest.raises(EmbedifyError, match="was cancelled"):
            run_job(server, tmp_path, api)
        report, vectors = run_job(server, tmp_path)
        np.testing.assert_allclose(vectors, expected(TEXTS), atol=1e-7)
        assert server.fake.batches.created == 1
        assert report.online == 3  # few left: online
