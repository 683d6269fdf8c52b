"""A loopback server speaking Bedrock's InvokeModel: ``POST /model/{modelId}/invoke`` with the id
URL-encoded, a SigV4 ``authorization`` header whose access key is checked (the signature is not),
Titan V2 bodies (one text, ``dimensions`` 256/512/1024, ``normalize``, 8192 tokens) and Cohere v3
bodies (``input_type``, ≤ 96 texts of ≤ 2048 characters, 512 tokens unless ``truncate`` cuts),
AWS errors (``x-amzn-ErrorType`` and ``{"message": ...}``) and ThrottlingException 429s, which
carry no retry hint (none is documented). Tokens are whitespace-separated words here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

from embedify.quantize import Precision, quantize
from embedify.testing import FakeService, Request, Response

ACCESS_KEY_ID = "AKIAEMBEDIFYTEST0001"
SECRET_ACCESS_KEY = "embedify-test-secret-access-key-0001"
REGION = "us-east-1"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = ("cohere.embed-english-v3", "cohere.embed-multilingual-v3")
TITAN_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}
# int8/uint8: 256 steps over [-1, 1]; binary/ubinary: sign bits (Bedrock's scaling is unpublished)
EMBEDDING_TYPES: dict[str, Precision] = {
    "float": "float32",
    "int8": "int8",
    "uint8": "uint8",
    "binary": "binary",
    "ubinary": "ubinary",
}
COHERE_KEYS = {"texts", "input_type", "truncate", "embedding_types", "images"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering"}


def vector_for(
    model: str,
    text: str,
    input_type: str | None = None,
    dimension: int = 1024,
    normalize: bool = True,
) -> np.ndarray:
    """The fake's vector: Titan's ignore the role (it has none), Cohere's depend on it."""
    seed = int.from_bytes(
        hashlib.sha256(f"{model}\0{input_type}\0{text}".encode()).digest()[:8], "little"
    )
    vector = np.random.default_rng(seed).standard_normal(1024)[:dimension] * 3
    return (vector / np.linalg.norm(vector) if normalize else vector).astype(np.float32)


def aws_error(status: int, code: str, message: str) -> Response:
    """An error as Bedrock sends it (the code's namespace suffix is stripped by botocore)."""
    kind = f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    headers = {"x-amzn-ErrorType": kind, "x-amzn-RequestId": "6b7a1f0e-0000-4000-8000-000000000000"}
    return Response(status, {"message": message}, headers=headers)


def malformed(problem: str) -> Response:
    return aws_error(
        400,
        "ValidationException",
        f"Malformed input request: {problem}, please reformat your input and try again.",
    )


@dataclass
class FakeBedrock(FakeService):
    access_key_id: str = ACCESS_KEY_ID
    rate_limit_every: int = 0

    def answer(self, request: Request, count: int, roll: float) -> Response:
        parts = request.path.split("/")
        if (
            request.method != "POST"
            or len(parts) != 4
            or parts[1] != "model"
            or parts[3] != "invoke"
        ):
            return aws_error(404, "UnknownOperationException", "Unknown operation")
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 Credential="):
            return aws_error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        if not authorization.startswith(f"AWS4-HMAC-SHA256 Credential={self.access_key_id}/"):
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return aws_error(
                429, "ThrottlingException", "Too many requests, please wait before trying again."
            )
        model, body = unquote(parts[2]), request.json()
        if model == TITAN:
            return self.titan(body)
        if model in COHERE:
            return self.cohere(model, body)
        return aws_error(400, "ValidationException", "The provided model identifier is invalid.")

    def titan(self, body: dict[str, Any]) -> Response:
        for key in body.keys() - TITAN_KEYS:
            return malformed(f"#: extraneous key [{key}] is not permitted")
        text = body.get("inputText")
        if not isinstance(text, str):
            return malformed("#: required key [inputText] not found")
        dimension = body.get("dimensions", 1024)
        if dimension not in (256, 512, 1024):
            return malformed(f"#/dimensions: {dimension} is not a valid enum value")
        tokens = len(text.split())
        if tokens > 8192:
            return aws_error(
                400,
                "ValidationException",
                "400 Bad Request: Too many input tokens. Max input tokens: 8192, "
                f"request input token count: {tokens}",
            )
        vector = vector_for(TITAN, text, None, dimension, body.get("normalize", True))
        kinds = body.get("embeddingTypes", ["float"])
        if not isinstance(kinds, list) or not set(kinds) <= {"float", "binary"}:
            return malformed("#/embeddingTypes: expected a list of 'float', 'binary'")
        by_type: dict[str, Any] = {"float": vector.tolist()} if "float" in kinds else {}
        if "binary" in kinds:  # one 0/1 per dimension, unpacked
            by_type["binary"] = (vector > 0).astype(int).tolist()
        return Response(
            200,
            {
                "embedding": vector.tolist(),
                "inputTextTokenCount": tokens,
                "embeddingsByType": by_type,
            },
        )

    def cohere(self, model: str, body: dict[str, Any]) -> Response:
        for key in body.keys() - COHERE_KEYS:
            return malformed(f"#: extraneous key [{key}] is not permitted")
        texts, input_type = body.get("texts"), body.get("input_type")
        if not isinstance(texts, list):
            return malformed("#: required key [texts] not found")
        if input_type not in INPUT_TYPES:
            return malformed("#: required key [input_type] not found")
        if len(texts) > 96:
            return malformed(f"#/texts: expected maximum item count: 96, found: {len(texts)}")
        cut = []
        for index, text in enumerate(texts):
            if len(text) > 2048:
                return malformed(f"#/texts/{index}: expected maxLength: 2048, actual: {len(text)}")
            words = text.split()
            truncate = body.get("truncate", "NONE")
            if len(words) > 512 and truncate == "NONE":
                return aws_error(
                    400, "ValidationException", "Input is too long for requested model."
                )
            if len(words) > 512:
                text = " ".join(words[-512:] if truncate == "START" else words[:512])
            cut.append(text)
        vectors = [vector_for(model, text, input_type).tolist() for text in cut]
        kinds = body.get("embedding_types")
        answer: dict[str, Any] = {"id": "5a1c9f20-0000-4000-8000-000000000000", "texts": texts}
        if kinds:
            if not isinstance(kinds, list) or not set(kinds) <= set(EMBEDDING_TYPES):
                return malformed(f"#/embedding_types: expected one of {list(EMBEDDING_TYPES)}")
            unit = np.stack([-np.ones(len(vectors[0])), np.ones(len(vectors[0]))])
            by_type = {
                kind: quantize(np.array(vectors), EMBEDDING_TYPES[kind], unit).tolist()
                if kind != "float"
                else vectors
                for kind in kinds
            }
            answer.update(embeddings=by_type, response_type="embeddings_by_type")
        else:
            answer.update(embeddings=vectors, response_type="embeddings_floats")
        return Response(200, answer)
