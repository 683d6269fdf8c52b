"""Fault injection: a Mistral server answering hostile ``data`` (bad indices, empty, ragged or
non-finite vectors, broken base64; see :mod:`embedify.testing.hostile`), through httpx. Every
such answer is refused naming the model and the item, and nothing of it is cached; a valid
answer in any order gives the rows in input order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedify_mistral.testing import API_KEY, FakeMistral, vector_for

import embedify
from embedify.errors import EmbeddingJobError
from embedify.testing import LoopbackServer
from embedify.testing.hostile import (
    INDEXED_CASES,
    INDEXED_FLOAT_CASES,
    TEXTS,
    garbled,
    inside,
    refused,
)

pytestmark = pytest.mark.faults

MODEL = "mistral-embed"


def model(server: LoopbackServer, wire: str, **options: Any) -> Any:
    return embedify.get_model(
        f"mistral:{MODEL}",
        base_url=server.url,
        api_key=API_KEY,
        max_concurrency=1,
        encoding_format="float" if wire == "floats" else "base64",
        **options,
    )


@pytest.mark.parametrize(
    ("case", "wire"),
    [(case, wire) for case in INDEXED_CASES for wire in ("base64", "floats")]
    + [(case, "floats") for case in INDEXED_FLOAT_CASES],  # base64 holds float32s only
)
def test_a_hostile_answer_is_refused_and_not_cached(case: str, wire: str, tmp_path: Path) -> None:
    garble, words = {**INDEXED_CASES, **INDEXED_FLOAT_CASES}[case]
    cache = tmp_path / "cache.sqlite3"
    with (
        LoopbackServer(garbled(FakeMistral(), inside("data", garble))) as server,
        pytest.raises(EmbeddingJobError) as caught,
    ):
        model(server, wire, cache=cache).embed(TEXTS)
    refused(caught.value, [f"mistral:{MODEL}", *words], cache=cache, secret=API_KEY)


@pytest.mark.parametrize("wire", ["base64", "floats"])
def test_rows_follow_their_index_in_any_order(wire: str) -> None:
    texts = [f"text number {i}" for i in range(12)]
    shuffle = random.Random(7).shuffle
    with LoopbackServer(
        garbled(FakeMistral(), inside("data", lambda data: shuffle(data) or data))
    ) as server:
        vectors = model(server, wire).embed(texts)
    assert np.allclose(vectors, [vector_for(MODEL, text) for text in texts], atol=1e-6)
