"""Fault injection: a Text-Embeddings-Inference server answering hostile ``/embed`` bodies
(wrong count, empty, ragged, non-finite or non-numeric vectors; see
:mod:`embedify.testing.hostile`) or hostile limits in ``/info``, through httpx. TEI's vectors
carry no index: their count and width are what can be checked, and every such answer is refused
naming the model and the item, with nothing of it cached."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_tei.testing import FakeTEI

import embedify
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.testing import LoopbackServer, Request, Response
from embedify.testing.hostile import TEXTS, VECTOR_CASES, Garbling, HostileVectorAnswers, garbled

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileVectorAnswers):
    source = "tei:http://127.0.0.1:"  # the model's name is its URL

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeTEI(), garble)

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(f"tei:{url}", **options)


def test_a_refused_answer_teaches_the_model_no_width() -> None:
    garble, _ = VECTOR_CASES["ragged"]
    with LoopbackServer(garbled(FakeTEI(), garble)) as server:
        model = embedify.get_model(f"tei:{server.url}", cache=False)
        with pytest.raises(EmbeddingJobError):
            model.embed(TEXTS)
    assert model.dimension is None


INFO_CASES = {
    "a string": ("max_client_batch_size", "lots"),
    "a bool": ("max_client_batch_size", True),
    "a negative": ("max_client_batch_size", -3),
    "a float": ("max_client_batch_size", 1e300),
    "zero tokens per input": ("max_input_length", 0),
    "negative tokens per batch": ("max_batch_tokens", -1),
    "negative permits": ("max_concurrent_requests", -1),
}


@pytest.mark.parametrize("case", list(INFO_CASES))
def test_hostile_limits_in_info_are_refused_by_name(case: str) -> None:
    """The engine plans every request from /info: a limit that is not a positive whole number
    is refused naming the field, never planned with and never a bare ValueError."""
    field, value = INFO_CASES[case]
    fake = FakeTEI()

    def handler(request: Request) -> Response:
        response = fake(request)
        if request.path == "/info" and isinstance(response.body, dict):
            response.body[field] = value
        return response

    with LoopbackServer(handler) as server:
        model = embedify.get_model(f"tei:{server.url}", cache=False, max_retries=0)
        with pytest.raises(BadResponseError, match=f"/info gives {field}="):
            model.embed(TEXTS)
