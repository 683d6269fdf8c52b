"""The OpenAI and TEI routes with the fake model: shapes, options and each protocol's errors."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

import embedify

Serve = Callable[..., TestClient]
FAKE = embedify.get_model("fake:16")


def expected(texts: list[str], role: embedify.Role = "document") -> np.ndarray:
    return FAKE.embed(texts, role)


# -- OpenAI: POST /v1/embeddings -------------------------------------------------------------


def test_openai_float_list_input(serve: Serve) -> None:
    texts = ["the cat sat", "on the mat", "stocks fell"]
    body = serve().post("/v1/embeddings", json={"input": texts, "model": "any"}).json()
    assert body["object"] == "list"
    assert body["model"] == "fake:16"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    vectors = np.array([item["embedding"] for item in body["data"]], np.float32)
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)


def test_openai_string_input_and_usage_counted_by_the_model_s_tokenizer(serve: Serve) -> None:
    text = "a single string input"
    body = serve().post("/v1/embeddings", json={"input": text, "model": "m"}).json()
    assert len(body["data"]) == 1
    tokens = sum(FAKE.count_tokens([text]))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_openai_base64_is_little_endian_float32(serve: Serve) -> None:
    texts = ["base64 please", "and another"]
    body = serve().post(
        "/v1/embeddings", json={"input": texts, "model": "m", "encoding_format": "base64"}
    )
    encoded = [item["embedding"] for item in body.json()["data"]]
    assert all(isinstance(value, str) for value in encoded)
    decoded = np.stack([np.frombuffer(base64.b64decode(value), "<f4") for value in encoded])
    np.testing.assert_allclose(decoded, expected(texts), atol=1e-6)


def test_openai_dimensions_cut_and_renormalise(serve: Serve) -> None:
    texts = ["matryoshka vectors"]
    body = serve().post("/v1/embeddings", json={"input": texts, "model": "m", "dimensions": 4})
    vector = np.array(body.json()["data"][0]["embedding"])
    full = expected(texts)[0]
    np.testing.assert_allclose(vector, full[:4] / np.linalg.norm(full[:4]), atol=1e-6)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"input": [], "model": "m"}, "cannot be empty"),
        ({"input": ["ok", "  "], "model": "m"}, "input 1 is empty"),
        ({"input": [[1, 2, 3]], "model": "m"}, "token ids are not supported"),
        ({"input": "x", "model": "m", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "model": "m", "dimensions": 0}, "`dimensions` should be positive"),
        ({"input": "x", "model": "m", "dimensions": 17}, "smaller than the maximum"),
        ({"input": ["x"] * 33, "model": "m"}, "Too many inputs: batch size 33 > maximum"),
    ],
)
def test_openai_invalid_requests_get_400_with_openai_s_error_body(
    serve: Serve, payload: dict[str, Any], message: str
) -> None:
    response = serve().post("/v1/embeddings", json=payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_openai_dimensions_on_a_fixed_dimension_model(serve: Serve) -> None:
    class Fixed(embedify.EmbeddingModel):
        provider = "fixed"
        default_model_id = "fixed"
        capabilities = embedify.Capabilities(dimension=8)

        def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
            return np.ones((len(texts), 8), np.float32)

    response = serve(Fixed()).post("/v1/embeddings", json={"input": "x", "dimensions": 4})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "This model does not support specifying dimensions."
    )


def test_openai_input_too_long_without_truncation(serve: Serve) -> None:
    long_text = "word " * 2000  # about 3,300 estimated tokens; the fake accepts 512
    response = serve(auto_truncate=False).post(
        "/v1/embeddings", json={"input": ["short", long_text]}
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "maximum context length is 512 tokens, however you requested" in message
    assert "Input 1" in message


def test_openai_over_long_input_is_cut_with_auto_truncate(serve: Serve) -> None:
    long_text = "word " * 2000
    body = serve().post("/v1/embeddings", json={"input": [long_text]}).json()
    cut = FAKE.truncate_text(long_text, 512, "end")
    np.testing.assert_allclose(body["data"][0]["embedding"], expected([cut])[0], atol=1e-6)
    assert body["usage"]["prompt_tokens"] == 512


def test_openai_json_syntax_error(serve: Serve) -> None:
    response = serve().post("/v1/embeddings", content=b"{not json")
    assert response.status_code == 400
    assert "Json syntax error" in response.json()["error"]["message"]


# -- TEI: POST /embed, GET /info, GET /health --------------------------------------------------


def test_tei_embed_returns_a_list_of_vectors_also_for_one_string(serve: Serve) -> None:
    client = serve()
    one = client.post("/embed", json={"inputs": "just one"}).json()
    many = client.post("/embed", json={"inputs": ["just one", "and two"]}).json()
    assert np.array(one).shape == (1, 16)
    np.testing.assert_allclose(many, expected(["just one", "and two"]), atol=1e-6)


def test_tei_normalize_false_keeps_the_model_s_own_output(serve: Serve) -> None:
    class Unnormalized(embedify.EmbeddingModel):
        provider = "unnormalized"
        default_model_id = "u"
        capabilities = embedify.Capabilities(dimension=2)

        def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
            return np.tile(np.array([[3.0, 4.0]], np.float32), (len(texts), 1))

    client = serve(Unnormalized())
    assert client.post("/embed", json={"inputs": "x", "normalize": False}).json() == [[3, 4]]
    assert client.post("/embed", json={"inputs": "x"}).json() == [[0.6, 0.8]]


def test_tei_prompt_name_selects_the_role(serve: Serve) -> None:
    client = serve()
    query = client.post("/embed", json={"inputs": ["where"], "prompt_name": "query"}).json()
    document = client.post("/embed", json={"inputs": ["where"]}).json()
    np.testing.assert_allclose(query, expected(["where"], "query"), atol=1e-6)
    np.testing.assert_allclose(document, expected(["where"], "document"), atol=1e-6)
    unknown = client.post("/embed", json={"inputs": ["where"], "prompt_name": "nope"})
    assert unknown.status_code == 422
    assert unknown.json()["error_type"] == "Validation"
    assert "choose one of: document, query" in unknown.json()["error"]


def test_tei_truncate_false_refuses_an_over_long_input_with_tei_s_message(serve: Serve) -> None:
    long_text = "word " * 2000
    tokens = FAKE.count_tokens([long_text])[0]
    response = serve().post("/embed", json={"inputs": [long_text], "truncate": False})
    assert response.status_code == 422
    assert response.json() == {
        "error": f"Input validation error: `inputs` must have less than 512 tokens. "
        f"Given: {tokens}",
        "error_type": "Validation",
    }


def test_tei_truncation_direction_left_keeps_the_end(serve: Serve) -> None:
    text = "start " * 1000 + "the very end"
    body = serve().post(
        "/embed", json={"inputs": text, "truncate": True, "truncation_direction": "Left"}
    )
    cut = FAKE.truncate_text(text, 512, "start")
    assert cut.endswith("the very end")
    np.testing.assert_allclose(body.json()[0], expected([cut])[0], atol=1e-6)


def test_tei_too_many_inputs(serve: Serve) -> None:
    response = serve(max_client_batch_size=4).post("/embed", json={"inputs": ["x"] * 5})
    assert response.status_code == 422
    assert response.json() == {
        "error": "batch size 5 > maximum allowed batch size 4",
        "error_type": "Validation",
    }


def test_tei_empty_inputs(serve: Serve) -> None:
    response = serve().post("/embed", json={"inputs": []})
    assert response.status_code == 400
    assert response.json() == {"error": "`inputs` cannot be empty", "error_type": "Empty"}


def test_a_body_over_the_payload_limit_is_refused(serve: Serve) -> None:
    response = serve(payload_limit=100).post("/embed", json={"inputs": ["x" * 200]})
    assert response.status_code == 413


class Gated(embedify.EmbeddingModel):
    """Batches wait until ``open`` is set (after the warm-up), so the queue can be filled."""

    provider = "gated"
    default_model_id = "gated"
    capabilities = embedify.Capabilities(dimension=2)

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.open.set()

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        self.open.wait(60)
        return np.ones((len(texts), 2), np.float32)


def test_a_full_queue_answers_429_with_retry_after(serve: Serve) -> None:
    model = Gated()
    client = serve(model, max_concurrent_requests=4, max_client_batch_size=4)
    model.open.clear()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, "/embed", json={"inputs": ["a", "b"]})
        try:
            while metric(client.get("/metrics").text, "embedify_permits_used") < 2:
                time.sleep(0.01)  # until the first request holds its two permits
            overloaded(client)
        finally:
            model.open.set()
        assert waiting.result().status_code == 200
    assert client.post("/embed", json={"inputs": ["a", "b", "c", "d"]}).status_code == 200


def overloaded(client: TestClient) -> None:
    tei = client.post("/embed", json={"inputs": ["a", "b", "c"]})
    assert tei.status_code == 429
    assert tei.json() == {
        "error": "Model is overloaded: retry after 1 seconds",
        "error_type": "Overloaded",
    }
    assert int(tei.headers["retry-after"]) >= 1
    openai = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})
    assert openai.status_code == 429
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(openai.headers["retry-after"]) >= 1


def test_info_publishes_the_limits_clients_plan_with(serve: Serve) -> None:
    info = serve(max_client_batch_size=8, max_batch_tokens=4096).get("/info").json()
    assert info["model_id"] == "fake:16"
    assert info["dimension"] == 16
    assert info["max_client_batch_size"] == 8
    assert info["max_batch_tokens"] == 4096
    assert info["max_input_length"] == 512
    assert info["max_concurrent_requests"] == 512


def test_health(serve: Serve) -> None:
    response = serve().get("/health")
    assert response.status_code == 200
    assert response.content == b""


# -- bearer key ------------------------------------------------------------------------------


def test_a_key_protects_every_route_but_health_and_metrics(serve: Serve) -> None:
    client = serve(api_key="s3cret-key")
    tei = client.post("/embed", json={"inputs": "x"})
    assert (tei.status_code, tei.content) == (401, b"")  # TEI: an empty 401
    assert client.get("/info").status_code == 401
    openai = client.post("/v1/embeddings", json={"input": "x"})
    assert openai.status_code == 401
    assert openai.json()["error"]["code"] == "invalid_api_key"
    wrong = client.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer s3cret"})
    assert wrong.status_code == 401
    right = {"Authorization": "Bearer s3cret-key"}
    assert client.post("/embed", json={"inputs": "x"}, headers=right).status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_the_key_is_never_in_a_response_or_the_metrics(serve: Serve) -> None:
    client = serve(api_key="s3cret-key")
    bodies = [
        client.post("/v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer no"}),
        client.post("/v1/embeddings", json={"input": "x"}),
        client.get("/metrics"),
    ]
    assert all("s3cret" not in response.text for response in bodies)


# -- metrics ---------------------------------------------------------------------------------


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == name:
            return float(value)
    raise AssertionError(f"{name} not in the metrics")


def test_metrics_count_requests_inputs_tokens_and_batches(serve: Serve) -> None:
    client = serve()
    texts = ["one two three", "four five"]
    client.post("/embed", json={"inputs": texts})
    client.post("/v1/embeddings", json={"input": "six"})
    client.post("/embed", json={"inputs": []})
    text = client.get("/metrics").text
    assert metric(text, 'embedify_requests_total{route="embed",status="200"}') == 1
    assert metric(text, 'embedify_requests_total{route="embed",status="400"}') == 1
    assert metric(text, 'embedify_requests_total{route="openai",status="200"}') == 1
    assert metric(text, 'embedify_inputs_total{route="embed"}') == 2
    assert metric(text, 'embedify_tokens_total{route="embed"}') == sum(FAKE.count_tokens(texts))
    assert metric(text, "embedify_batch_inputs_count") == 2
    assert metric(text, "embedify_queue_inputs") == 0
    assert metric(text, 'embedify_request_duration_seconds_count{route="embed"}') == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [([1, 2], "Input should be a valid dictionary"), ({"model": "m"}, "`input`: Field required")],
)
def test_a_body_of_the_wrong_shape_is_named(serve: Serve, body: Any, message: str) -> None:
    response = serve().post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
