"""The example plugin, loaded through its entry point, passes embedify's conformance suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from embedify_acme.server import API_KEY, AcmeServer, vector_for

import embedify
from embedify.testing import ConformanceSuite, LoopbackServer


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(AcmeServer()) as running:
        yield running


class TestAcmeConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        return lambda **options: embedify.get_model(
            "acme:acme-embed-mini", base_url=server.url, api_key=API_KEY, **options
        )

    @pytest.fixture
    def error_cases(self, server: LoopbackServer):  # type: ignore[no-untyped-def]
        bad_key = embedify.get_model("acme", base_url=server.url, api_key="wrong")
        bad_model = embedify.get_model("acme:nope", base_url=server.url, api_key=API_KEY)
        return [
            (lambda: bad_key.embed(["text"]), embedify.AuthenticationError),
            (lambda: bad_model.embed(["text"]), embedify.ModelNotFoundError),
        ]


def test_entry_point_is_how_the_plugin_loads() -> None:
    code = (
        "import embedify, sys; from embedify.registry import registry; registry.load(); "
        "print(registry.providers['acme'].plugin, 'httpx' in sys.modules)"
    )
    env = {**os.environ, "EMBEDIFY_PLUGINS": "acme"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [
        "acme",
        "False",
    ]  # registered by the entry point, httpx not imported


def test_vectors_are_the_servers_rows(server: LoopbackServer) -> None:
    model = embedify.get_model("acme-embed-mini", base_url=server.url, api_key=API_KEY)
    texts = [f"text number {i}" for i in range(10)]
    expected = np.array([vector_for("query", t, 64) for t in texts], dtype=np.float32)
    assert np.allclose(model.embed(texts, "query"), expected, atol=1e-6)
