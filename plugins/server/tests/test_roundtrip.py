"""Clients of both protocols, pointed at a real uvicorn server running the local model, get the
vectors the model gives in-process: the openai SDK, and embedify's openai: and tei: providers."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import pytest
from embedify_server.app import ServerSettings
from embedify_server.testing import running_server

import embedify

KEY = "round-trip-key"
TEXTS = [
    "The cat sat on the mat.",
    "Stocks fell sharply after the announcement.",
    "¿Dónde está la biblioteca? 图书馆在哪里？",
    "word " * 600,  # longer than the model's 256 tokens: cut the same way on both sides
    *[f"passage number {n} about {'embedding ' * (n % 9)}servers" for n in range(36)],
]


@pytest.fixture(scope="module")
def in_process() -> np.ndarray:
    return embedify.get_model("local").embed(TEXTS)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_server("local", ServerSettings(api_key=KEY)) as base:
        yield base


def assert_same_vectors(served: np.ndarray, in_process: np.ndarray) -> None:
    assert served.shape == in_process.shape
    cosines = np.sum(served * in_process, axis=1) / (
        np.linalg.norm(served, axis=1) * np.linalg.norm(in_process, axis=1)
    )
    assert cosines.min() >= 0.99999, cosines.min()


def test_the_openai_sdk(url: str, in_process: np.ndarray) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    texts = TEXTS[:32]  # the server's max_client_batch_size
    default = client.embeddings.create(input=texts, model="all-MiniLM-L6-v2")  # base64 on the wire
    assert_same_vectors(np.array([item.embedding for item in default.data]), in_process[:32])
    floats = client.embeddings.create(input=texts[:3], model="m", encoding_format="float")
    assert_same_vectors(np.array([item.embedding for item in floats.data]), in_process[:3])
    raw = client.embeddings.create(input=texts[:2], model="m", encoding_format="base64")
    decoded = [np.frombuffer(base64.b64decode(item.embedding), "<f4") for item in raw.data]
    assert_same_vectors(np.stack(decoded), in_process[:2])
    local = embedify.get_model("local")
    assert default.usage.prompt_tokens == sum(min(n, 256) for n in local.count_tokens(texts))
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(
            input="x", model="m"
        )


def test_embedify_s_openai_provider(url: str, in_process: np.ndarray) -> None:
    # 40 inputs to a server that takes at most 32 per request: the engine's modest first
    # requests to a server of unknown limits fit, or its "Too many inputs" answer splits them.
    model = embedify.get_model(
        "openai:all-MiniLM-L6-v2", base_url=f"{url}/v1", api_key=KEY, max_concurrency=1
    )
    result = model.embed_with_report(TEXTS)
    assert_same_vectors(result.vectors, in_process)
    assert result.report.failed == 0 and result.report.requests >= 2


def test_embedify_s_tei_provider(url: str, in_process: np.ndarray) -> None:
    model = embedify.get_model(f"tei:{url}", api_key=KEY)
    assert_same_vectors(model.embed(TEXTS), in_process)
    assert model.info.limits.max_inputs_per_request == 32  # read from /info
    assert model.info.limits.max_tokens_per_input == 256
