"""Fault injection: a provider's own quantized codes (``precision=``) that are not codes of that
precision (out of range, fractional, the wrong width) are refused, naming the value and its
place, and never wrapped around or cached."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from test_precision import NativeCodes

import embedify
from embedify.errors import BadResponseError
from embedify.quantize import provider_codes

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("value", [300, -129, 1.5, 256])
def test_provider_codes_outside_the_precision_are_refused(value: float) -> None:
    with pytest.raises(BadResponseError, match=rf"returned {value}.* input 0, component 1"):
        provider_codes(np.array([[1, value]]), "int8" if value != 256 else "binary", "<p>")


def test_hostile_provider_codes_fail_the_job_and_stay_out_of_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"
    hostile = NativeCodes(precision="int8", cache=cache, max_retries=0)
    hostile.answer = [[300.0] * 64]
    with pytest.raises(embedify.EmbeddingJobError) as caught:
        hostile.embed(["x"])
    assert "300" in str(caught.value.failures[0])
    with sqlite3.connect(cache) as connection:
        assert connection.execute("SELECT COUNT(*) FROM embeddings").fetchone() == (0,)


def test_provider_codes_of_the_wrong_width_are_refused() -> None:
    short = NativeCodes(precision="binary", max_retries=0)
    short.answer = [[1.0] * 4]  # 64 dimensions pack into 8 bytes, not 4
    with pytest.raises(embedify.EmbeddingJobError):
        short.embed(["x"])
