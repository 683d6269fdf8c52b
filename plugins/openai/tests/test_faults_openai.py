"""Fault injection: an OpenAI-compatible server answering hostile ``data`` (see
:mod:`embedify.testing.hostile`), through the unmodified openai SDK. Every such answer is
refused naming the model and the item, and nothing of it is cached; a valid answer in any order
gives the rows in input order."""

from __future__ import annotations

from typing import Any

import pytest
from embedify_openai.testing import API_KEY, FakeOpenAI

import embedify
from embedify.testing import LoopbackServer, Request, Response
from embedify.testing.hostile import Garbling, HostileIndexedAnswers, garbled, inside

pytestmark = pytest.mark.faults


class TestHostileAnswers(HostileIndexedAnswers):
    source = "openai:text-embedding-3-small"
    secret = API_KEY

    def answers(self, garble: Garbling, wire: str) -> Any:
        return garbled(FakeOpenAI(ignore_base64=wire == "floats"), inside("data", garble))

    def model(self, url: str, wire: str, **options: Any) -> embedify.EmbeddingModel:
        return embedify.get_model(
            "openai:text-embedding-3-small", base_url=url, api_key=API_KEY, **options
        )


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b"<html><body>Welcome to nginx!</body></html>", "no JSON"),
        (b"null", "JSON without a 'data' list"),
        (b"{}", "JSON without a 'data' list"),
        (b'{"data": "none"}', "JSON without a 'data' list"),
    ],
)
def test_a_success_that_is_not_an_embeddings_answer_names_the_url_and_base_url(
    body: bytes, found: str
) -> None:
    """A 200 from a web server or a proxy means base_url points elsewhere: say so, with the URL
    and the start of what came back, instead of a Python error from reading it."""

    def page(request: Request) -> Response:
        return Response(200, body, headers={"content-type": "application/json"})

    with LoopbackServer(page) as server:
        model = embedify.get_model(
            "openai:text-embedding-3-small", base_url=server.url, api_key=API_KEY, max_retries=0
        )
        with pytest.raises(embedify.EmbeddingJobError) as raised:
            model.embed(["a"])
    message = str(raised.value.failures[0])
    assert isinstance(raised.value.failures[0], embedify.errors.BadResponseError)
    assert f"{server.url}/v1/embeddings answered 200 with {found}" in message
    assert f"({body.decode()[:30]}" in message and f"is base_url ({server.url}/v1)" in message
