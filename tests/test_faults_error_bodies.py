"""A server's error body is the server's text: it reaches the user's terminal and logs through
our exceptions. Whatever a hostile body holds (escape sequences that rewrite a terminal, a
megabyte of message), the error a user sees is short and printable, for every provider."""

from __future__ import annotations

from typing import Any

import pytest

import embedify
from embedify.errors import BadResponseError, EmbeddingJobError, EmbedifyError
from embedify.testing import LoopbackServer, Request, Response

pytestmark = pytest.mark.faults

ESCAPES = "\x1b[2J\x1b[31mall your keys are belong to us\x1b]0;title\x07\r\n"
MESSAGE = ESCAPES + "A" * 1_000_000
CODE = "\x1b[5m" + "B" * 10_000


def bodies() -> dict[str, tuple[str, str, Any]]:
    """provider -> (name, path prefix of base_url, error body in that provider's shape)."""
    return {
        "openai": (
            "openai:text-embedding-3-small",
            "/v1",
            {"error": {"message": MESSAGE, "type": "invalid_request_error", "code": CODE}},
        ),
        "cohere": ("cohere:embed-english-v3.0", "", {"message": MESSAGE}),
        "jina": ("jina:jina-embeddings-v3", "/v1", {"detail": MESSAGE}),
        "tei": ("tei", "", {"error": MESSAGE, "error_type": CODE}),
        "voyage": ("voyage:voyage-3.5", "/v1", {"detail": MESSAGE}),
        "mistral": (
            "mistral:mistral-embed",
            "/v1",
            {"object": "error", "message": MESSAGE, "type": "invalid_request_error", "code": CODE},
        ),
        "gemini": (
            "gemini:gemini-embedding-001",
            "/v1beta",
            {"error": {"code": 400, "message": MESSAGE, "status": CODE}},
        ),
        "ollama": ("ollama:nomic-embed-text", "", {"error": MESSAGE}),
    }


def model_for(provider: str, server: LoopbackServer) -> embedify.EmbeddingModel:
    if provider == "tei":
        return embedify.get_model(f"tei:{server.url}", max_retries=0, cache=False)
    name, path, _ = bodies()[provider]
    url = f"{server.url}{path}"
    return embedify.get_model(name, base_url=url, api_key="sk-test", max_retries=0, cache=False)


@pytest.mark.parametrize("provider", list(bodies()))
def test_a_hostile_error_body_becomes_a_short_printable_message(provider: str) -> None:
    pytest.importorskip(f"embedify_{provider}", reason=f"the {provider} plugin is not installed")
    body = bodies()[provider][2]

    def handler(request: Request) -> Response:
        if request.path == "/info":  # TEI's limits, read before the first request
            return Response(200, {"model_id": "m", "max_client_batch_size": 8})
        return Response(400, body)

    with LoopbackServer(handler) as server:
        model = model_for(provider, server)
        with pytest.raises(EmbedifyError) as caught:
            model.embed(["one text"])
    error = caught.value
    texts = [str(error)]
    if isinstance(error, EmbeddingJobError):
        texts += [str(failure) for failure in error.failures.values()]
    for text in texts:
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
        assert len(text) < 2_000, f"{len(text)} characters"
    assert any("all your keys are belong to us" in text for text in texts)


NOT_AN_ANSWER = {
    "an HTML page": (b"<html>sign in to the hotel wifi</html>", "text/html"),
    "null": (b"null", "application/json"),
    "a list": (b"[]", "application/json"),
    "an empty object": (b"{}", "application/json"),
    "a string": (b'"x"', "application/json"),
    "nulls": (b'{"data": null, "embeddings": null}', "application/json"),
    "cut short": (b'{"data": [', "application/json"),
    "nothing": (b"", "application/json"),
}


@pytest.mark.parametrize("body", list(NOT_AN_ANSWER))
@pytest.mark.parametrize("provider", list(bodies()))
def test_a_200_that_is_not_an_answer_is_a_bad_response(provider: str, body: str) -> None:
    """A captive portal, a proxy or a wrong base_url answers 200 with something else: that is
    a BadResponseError (never an invalid request, nor a bare TypeError from an SDK)."""
    pytest.importorskip(f"embedify_{provider}", reason=f"the {provider} plugin is not installed")
    content, content_type = NOT_AN_ANSWER[body]

    def handler(request: Request) -> Response:
        if request.path == "/info":
            return Response(200, {"model_id": "m", "max_client_batch_size": 8})
        return Response(200, content, headers={"content-type": content_type})

    with LoopbackServer(handler) as server:
        model = model_for(provider, server)
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(["one text"])
    assert all(isinstance(error, BadResponseError) for error in caught.value.failures.values())
