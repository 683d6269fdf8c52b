"""The loopback OpenAI server models api.openai.com: token buckets, headers, 429 bodies, and
the self-hosted compute queue. Driven with a fake clock, so nothing here sleeps."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI, go_duration, serve_fake_openai

from embedify.testing import LoopbackServer, Request

AUTH = {"authorization": f"Bearer {API_KEY}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def post(fake: FakeOpenAI, texts: list[str], headers: dict[str, str] | None = None) -> Any:
    body = json.dumps({"model": "text-embedding-3-small", "input": texts}).encode()
    return fake(Request("POST", "/v1/embeddings", {}, headers or AUTH, body))


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(0, "0s"), (0.012, "12ms"), (1, "1s"), (2.8121, "2.812s"), (360, "6m0s"), (3600, "1h0m0s")],
)
def test_reset_durations_are_written_as_openai_does(seconds: float, written: str) -> None:
    assert go_duration(seconds) == written


def test_requests_bucket_refills_continuously() -> None:
    clock = Clock()
    fake = FakeOpenAI(requests_per_minute=3, clock=clock)
    answers = [post(fake, ["a"]) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
    assert answers[-1].headers["x-ratelimit-reset-requests"] == "1m0s"
    refused = post(fake, ["a"])
    assert refused.status == 429 and refused.headers["retry-after"] == "20"
    error = refused.body["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert "on requests per min (RPM): Limit 3, Used 3, Requested 1" in error["message"]
    assert "Please try again in 20s." in error["message"]
    clock.now += 19.9
    assert post(fake, ["a"]).status == 429  # a refused request is not charged
    clock.now += 0.1
    assert post(fake, ["a"]).status == 200
    assert post(fake, ["a"]).status == 429


def test_tokens_bucket_charges_the_input_tokens() -> None:
    clock = Clock()
    fake = FakeOpenAI(tokens_per_minute=600, clock=clock, retry_after_ms=True)
    first = post(fake, ["one two three"] * 100)  # 300 tokens
    assert first.status == 200 and first.headers["x-ratelimit-remaining-tokens"] == "300"
    assert first.headers["x-ratelimit-reset-tokens"] == "30s"
    clock.now += 1.5  # +15 tokens
    refused = post(fake, ["one two three"] * 110)  # 330 tokens: 15 short, 1.5 s at 10 per s
    assert refused.status == 429
    assert refused.headers["retry-after"] == "2" and refused.headers["retry-after-ms"] == "1500"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "315"
    message = refused.body["error"]["message"]
    assert "(TPM): Limit 600, Used 285, Requested 330. Please try again in 1.5s." in message
    empty = FakeOpenAI(tokens_per_minute=600, initial_fill=0.0, clock=clock)
    clock.now += 30  # set-up time (say, precomputing answers) does not fill the buckets
    assert post(empty, ["word"]).headers["retry-after"] == "1"  # 0.1 s rounded up
    clock.now -= 30
    too_big = post(fake, ["word"] * 601)
    assert too_big.status == 429 and "Request too large" in too_big.body["error"]["message"]
    clock.now += 1.5
    assert post(fake, ["one two three"] * 110).status == 200


def test_every_answer_carries_the_limits_except_self_hosted() -> None:
    fake = FakeOpenAI(requests_per_minute=3000, tokens_per_minute=1_000_000, error_rate=1.0)
    failed = post(fake, ["a"])
    assert failed.status in (500, 503)
    assert failed.headers["x-ratelimit-limit-requests"] == "3000"
    assert failed.headers["x-ratelimit-limit-tokens"] == "1000000"
    plain = post(FakeOpenAI(), ["a"])
    assert plain.headers["x-ratelimit-limit-tokens"] == "10000000"
    hosted = post(FakeOpenAI(self_hosted=True), ["a"], headers={"authorization": "Bearer any"})
    assert hosted.status == 200
    assert not any(name.startswith("x-ratelimit") for name in hosted.headers)


def test_self_hosted_queue_keeps_computing_abandoned_work() -> None:
    clock = Clock()
    fake = FakeOpenAI(self_hosted=True, latency=0.5, latency_per_token=0.01, clock=clock)
    first = post(fake, ["word"] * 100)  # 0.5 + 1.0 s of work
    second = post(fake, ["word"] * 10)  # waits for the first: 1.5 + 0.6
    assert first.delay == pytest.approx(1.5) and second.delay == pytest.approx(2.1)
    clock.now += 0.1  # the clients give up; the server does not know
    third = post(fake, ["word"])
    assert third.delay == pytest.approx(2.1 - 0.1 + 0.51)
    assert fake.compute_seconds == pytest.approx(1.5 + 0.6 + 0.51)
    long_input = post(fake, ["word " * 9000])  # no per-request or per-input token check
    assert long_input.status == 200


def test_the_sdk_sees_openais_429() -> None:
    fake = FakeOpenAI(requests_per_minute=1)
    with LoopbackServer(fake) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
        client.embeddings.create(input=["x"], model="text-embedding-3-small")
        with pytest.raises(openai.RateLimitError) as caught:
            client.embeddings.create(input=["x"], model="text-embedding-3-small")
    assert caught.value.code == "rate_limit_exceeded" and caught.value.type == "requests"
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.response.headers["retry-after"] == "60"


def test_serve_fake_openai_serves_the_sdk_for_the_block_only() -> None:
    fake = FakeOpenAI(quota_exhausted=True)
    with serve_fake_openai() as server, serve_fake_openai(fake) as broke:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        answer = client.embeddings.create(input=["hello"], model="text-embedding-3-small")
        assert len(answer.data[0].embedding) == 1536
        assert server.fake.log[0]["body"]["input"] == ["hello"]
        wrong_key = openai.OpenAI(base_url=server.base_url, api_key="sk-other", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong_key.embeddings.create(input=["hello"], model="text-embedding-3-small")
        assert broke.fake is fake
        broken = openai.OpenAI(base_url=broke.base_url, api_key=broke.api_key, max_retries=0)
        with pytest.raises(openai.RateLimitError, match="exceeded your current quota"):
            broken.embeddings.create(input=["hello"], model="text-embedding-3-small")
    after = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    with pytest.raises(openai.APIConnectionError):  # it stopped listening with the block
        after.embeddings.create(input=["hello"], model="text-embedding-3-small")
