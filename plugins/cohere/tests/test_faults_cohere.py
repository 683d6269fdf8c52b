"""Fault injection: a Cohere server answering hostile ``embeddings`` (no index: count and width are
what can be checked) (see :mod:`embedify.testing.hostile`), through the unmodified cohere SDK.
Every such answer is refused naming the model and the item, and nothing of it is cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from embedify_cohere.testing import API_KEY, FakeCohere

import embedify
from embedify.testing import LoopbackServer
from embedify.testing.hostile import Garbling, HostileVectorAnswers, garbled, refused

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileVectorAnswers):
    source = "cohere:embed-english-v3.0"
    secret = API_KEY
    wires = ("float", "int8")  # embedding types

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(
            FakeCohere(),
            lambda body: {
                **body,
                "embeddings": {k: garble(v) for k, v in body["embeddings"].items()},
            },
        )

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "cohere:embed-english-v3.0",
            base_url=url,
            api_key=API_KEY,
            precision="float32" if wire == "float" else wire,
            **options,
        )


@pytest.mark.parametrize(
    ("precision", "value"), [("int8", 300), ("int8", 0.5), ("uint8", -1), ("ubinary", 256)]
)
def test_codes_outside_the_precision_are_refused_not_wrapped(
    precision: str, value: float, tmp_path: Path
) -> None:
    """Cohere's int8 answer with a 300 in it must not become 44 (int8 wrap-around)."""
    wire = precision

    def rewrite(body: Any) -> Any:
        rows = body["embeddings"][wire]
        rows[0][3] = value
        return body

    with LoopbackServer(garbled(FakeCohere(), rewrite)) as server:
        model = embedify.get_model(
            "cohere:embed-english-v3.0",
            base_url=server.url,
            api_key=API_KEY,
            precision=precision,
            cache=tmp_path / "cache.db",
            max_retries=0,
        )
        with pytest.raises(embedify.EmbeddingJobError) as caught:
            model.embed(["x"])
    refused(
        caught.value,
        [f"{value:g}", "input 0, component 3", precision],
        cache=tmp_path / "cache.db",
        secret=API_KEY,
    )
