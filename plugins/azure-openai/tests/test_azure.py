"""Azure OpenAI through openai's AzureOpenAI / OpenAI clients against a loopback Azure server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from embedify_azure_openai.testing import FakeAzureEntra
from embedify_openai.testing import API_KEY, FakeOpenAI, vector_for

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer


@pytest.fixture(autouse=True)
def isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))
    for name in (
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "OPENAI_API_VERSION",
        "AZURE_OPENAI_AD_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(azure=True)


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def azure(server: LoopbackServer, deployment: str = "small", **options: Any) -> Any:
    settings = {
        "azure_endpoint": server.url,
        "api_key": API_KEY,
        "api_version": "2024-10-21",
        "model": "text-embedding-3-small",
        **options,
    }
    return embedify.get_model(f"azure:{deployment}", **settings)


class TestAzureConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: azure(server, **options)

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        wrong_key = azure(server, api_key="wrong")
        no_deployment = azure(server, "missing")
        no_version = azure(server, api_version=None)
        return [
            (lambda: wrong_key.embed(["x"]), embedify.AuthenticationError),
            (lambda: no_deployment.embed(["x"]), embedify.ModelNotFoundError),
            (lambda: no_version.embed(["x"]), embedify.ConfigurationError),
        ]


def test_deployment_route_with_api_key(server: LoopbackServer, fake: FakeOpenAI) -> None:
    vectors = azure(server, max_concurrency=1).embed(["hello azure"])
    assert np.allclose(
        vectors, vector_for("text-embedding-3-small", "hello azure")[None], atol=1e-6
    )
    call = fake.log[-1]
    assert call["path"] == "/openai/deployments/small/embeddings"
    assert call["query"]["api-version"] == "2024-10-21" and call["headers"]["api-key"] == API_KEY


def test_v1_route_with_entra_token_provider(server: LoopbackServer, fake: FakeOpenAI) -> None:
    model = embedify.get_model(
        "azure:small",
        azure_endpoint=server.url,
        route="v1",
        azure_ad_token_provider=lambda: API_KEY,
    )
    model.embed(["token auth"])
    call = fake.log[-1]
    assert call["path"] == "/openai/v1/embeddings" and call["body"]["model"] == "small"
    assert call["headers"]["authorization"] == f"Bearer {API_KEY}"


def test_old_sixteen_input_deployments_are_split(fake: FakeOpenAI) -> None:
    fake.max_inputs = 16
    texts = [f"text {i}" for i in range(100)]
    with LoopbackServer(fake) as server:
        result = azure(server, max_concurrency=1, batch_size=64).embed_with_report(texts)
    assert result.report.splits > 0 and result.report.failed == 0
    assert max(len(e["body"]["input"]) for e in fake.log if e["status"] == 200) <= 16
    known = azure(server, max_inputs_per_request=16)
    assert known.info.limits.max_inputs_per_request == 16


def test_azure_rate_limit_message_without_header(fake: FakeOpenAI) -> None:
    fake.rate_limit_every = 1
    fake.retry_after = None
    with LoopbackServer(fake) as server, pytest.raises(embedify.RateLimitError) as caught:
        asyncio.run(azure(server).aembed_batch(["x"], "document"))  # one request, no engine
    assert caught.value.retry_after == 1.0  # said only in the message
    assert "code" not in str(caught.value) and "429" in str(caught.value)


def test_environment(
    server: LoopbackServer, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    assert embedify.get_model("azure:small").embed(["env"]).shape == (1, 1536)


@pytest.mark.parametrize("route", ["deployments", "v1"])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_entra_token_provider_is_asked_per_request(route: str, asynchronous: bool) -> None:
    fake = FakeAzureEntra()
    provider: Any = fake.tokens.provider
    if asynchronous:

        async def provider() -> str:
            return fake.tokens.provider()

    with LoopbackServer(fake) as server:
        model = azure(server, api_key=None, route=route, azure_ad_token_provider=provider)
        model.embed(["first hour"])
        fake.tokens.now += 2 * fake.tokens.lifetime  # the first token has expired
        assert model.embed(["third hour"]).shape == (1, 1536)
    assert fake.statuses == [200, 200] and len(fake.tokens.expiry) == 2
    assert fake.log[-1]["headers"]["authorization"] == "Bearer entra-1"


def test_an_expired_static_token_is_an_authentication_error() -> None:
    fake = FakeAzureEntra()
    token = fake.tokens.provider()
    fake.tokens.now += 2 * fake.tokens.lifetime
    with LoopbackServer(fake) as server, pytest.raises(embedify.EmbeddingJobError) as caught:
        azure(server, api_key=None, azure_ad_token=token).embed(["x"])
    (error,) = caught.value.failures.values()
    assert isinstance(error, embedify.AuthenticationError) and "expired" in str(error)
    assert token not in str(caught.value)


def test_a_wrong_endpoint_path_names_the_url(server: LoopbackServer) -> None:
    with pytest.raises(embedify.ConfigurationError) as caught:
        azure(server, azure_endpoint=f"{server.url}/wrong").embed(["x"])
    message = str(caught.value)
    assert f"{server.url}/wrong/openai/deployments/small/embeddings" in message
    assert "route is missing" in message


@pytest.mark.parametrize("suffix", ["/", "/openai", "/openai/v1/"])
@pytest.mark.parametrize("route", ["deployments", "v1"])
def test_endpoint_as_pasted_from_the_portal_or_the_docs(
    server: LoopbackServer, suffix: str, route: str
) -> None:
    pasted = azure(server, azure_endpoint=server.url + suffix, route=route)
    assert pasted.embed(["x"]).shape == (1, 1536)
    assert pasted.endpoint == f"{server.url}/openai/deployments/small"


def test_the_deployment_is_part_of_the_endpoint(server: LoopbackServer) -> None:
    assert azure(server, "small").endpoint != azure(server, "large").endpoint
    assert azure(server, route="v1").endpoint == azure(server).endpoint
