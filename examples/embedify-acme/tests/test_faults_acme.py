"""Fault injection: an Acme server answering hostile ``embeddings`` (a plain list of vectors: no
index, so count, width and values are what can be checked; see :mod:`embedify.testing.hostile`).
Every such answer is refused naming the model and the input, and nothing of it is cached."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_acme.testing import API_KEY, FakeAcme

import embedify
from embedify.testing import LoopbackServer
from embedify.testing.hostile import Garbling, HostileVectorAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileVectorAnswers):
    source = "acme:acme-embed-mini"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeAcme(), inside("embeddings", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model("acme:acme-embed-mini", base_url=url, api_key=API_KEY, **options)


@pytest.mark.parametrize(
    ("answer", "words"),
    [([[0.5, 0.5]], "a list"), ({"vectors": [[0.5]]}, "NoneType, not a list of vectors")],
)
def test_an_answer_that_is_not_acmes_shape_is_refused(answer: Any, words: str) -> None:
    with (
        LoopbackServer(garbled(FakeAcme(), lambda body: answer)) as server,
        pytest.raises(embedify.EmbeddingJobError) as caught,
    ):
        embedify.get_model("acme:acme-embed-mini", base_url=server.url, api_key=API_KEY).embed(
            ["text"]
        )
    assert isinstance(caught.value.failures[0], embedify.BadResponseError)
    assert words in str(caught.value.failures[0]) and "acme:acme-embed-mini" in str(caught.value)
