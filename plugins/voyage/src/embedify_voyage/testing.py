"""A loopback server speaking Voyage AI's ``POST /v1/embeddings`` (see :mod:`embedify_voyage.model`
for the sources): bearer key (401 otherwise), 1,000 inputs and the model's total tokens per
request, 32K (law-2: 16K) tokens per input unless ``truncation`` (default true), ``input_type``
query/document/null giving different vectors, ``output_dimension`` from the allowed values,
``output_dtype`` int8/uint8 (256 steps over [-1, 1]) and binary/ubinary (sign bits packed,
offset binary for binary) on the models that offer it,
``encoding_format`` null/base64 (float vectors), unit-length vectors, ``usage.total_tokens``,
``{"detail": ...}`` errors (400 for request problems, as Voyage answers them), and 429 with
``Retry-After``.

Tokens are counted as one per four UTF-8 bytes (Voyage's tokenizer is not reproduced). The texts
of the token-total, context-window and unknown-model errors are Voyage's as quoted in public
reports; the one for more than 1,000 inputs is not published and is written here in their style.
``max_inputs``, ``context_window`` and ``max_batch_tokens`` override the documented limits, so
tests can make the server refuse what the client's plan lets through.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import cast

import numpy as np

from embedify.quantize import Precision, quantize
from embedify.testing import FakeService, Request, Response, embedding_items

API_KEY = "pa-voyage-test-key"
# The service's model table is written again from the API reference, not imported from the
# plugin: a slip in the plugin's table then shows as a failing test instead of agreeing with itself.
FLEXIBLE = (256, 512, 1024, 2048)
# model: (default dimension, allowed output_dimension values, context tokens, tokens per request)
MODELS: dict[str, tuple[int, tuple[int, ...], int, int]] = {
    "voyage-4-large": (1024, FLEXIBLE, 32_000, 120_000),
    "voyage-4": (1024, FLEXIBLE, 32_000, 320_000),
    "voyage-4-lite": (1024, FLEXIBLE, 32_000, 1_000_000),
    "voyage-3-large": (1024, FLEXIBLE, 32_000, 120_000),
    "voyage-3.5": (1024, FLEXIBLE, 32_000, 320_000),
    "voyage-3.5-lite": (1024, FLEXIBLE, 32_000, 1_000_000),
    "voyage-code-3": (1024, FLEXIBLE, 32_000, 120_000),
    "voyage-finance-2": (1024, (1024,), 32_000, 120_000),
    "voyage-law-2": (1024, (1024,), 16_000, 120_000),
}
MAX_INPUTS = 1000
OUTPUT_DTYPES = ("float", "int8", "uint8", "binary", "ubinary")
# output_dtype beyond float: every model in the table but the domain ones
QUANTIZED_MODELS = set(MODELS) - {"voyage-finance-2", "voyage-law-2"}
PROMPTS = {
    "query": "Represent the query for retrieving supporting documents: ",
    "document": "Represent the document for retrieval: ",
}


def tokens_of(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4)


def vector_for(
    model: str, input_type: str | None, text: str, dimension: int | None = None
) -> np.ndarray:
    """The fake's unit-length vector: Voyage embeds the prompt of ``input_type`` and the text."""
    prompted = PROMPTS.get(input_type or "", "") + text
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{prompted}".encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(2048)[: dimension or MODELS[model][0]]
    unit: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return unit


def quantized(vectors: np.ndarray, output_dtype: str) -> list[list[int]]:
    """The fake's integer answer for ``output_dtype`` (Voyage's own scaling is unpublished):
    int8/uint8 steps over [-1, 1], binary/ubinary sign bits, as :mod:`embedify.quantize`."""
    unit = np.stack([-np.ones(vectors.shape[1]), np.ones(vectors.shape[1])])
    codes = quantize(vectors, cast(Precision, output_dtype), unit)  # one of OUTPUT_DTYPES
    rows: list[list[int]] = codes.astype(int).tolist()
    return rows


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"detail": detail}, headers=headers or {})


@dataclass
class FakeVoyage(FakeService):
    rate_limit_every: int = 0
    max_inputs: int = MAX_INPUTS
    context_window: int | None = None
    max_batch_tokens: int | None = None

    def answer(self, request: Request, count: int, roll: float) -> Response:
        if request.method != "POST" or request.path != "/v1/embeddings":
            return _detail(404, "Not Found")
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _detail(401, "Provided API key is invalid.")
        if self.rate_limit_every and count % self.rate_limit_every == 0:
            return _detail(
                429,
                "You have exceeded your rate limit. Please pace your requests.",
                {"retry-after": "1"},
            )
        body = request.json()
        model, inputs = body.get("model"), body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if model not in MODELS:
            return _detail(400, f"Model {model} is not supported. Supported models are {[*MODELS]}")
        _, allowed, context, batch_tokens = MODELS[model]
        if not isinstance(inputs, list) or not inputs:
            return _detail(400, "input must be a non-empty string or list of strings")
        if len(inputs) > self.max_inputs:
            return _detail(
                400,
                f"Request to model '{model}' failed. The max allowed batch size is "
                f"{self.max_inputs}. Your batch has {len(inputs)} texts.",
            )
        input_type = body.get("input_type")
        if input_type not in (None, "query", "document"):
            return _detail(400, "input_type must be null, 'query' or 'document'")
        output_dimension = body.get("output_dimension")
        if output_dimension is not None and output_dimension not in allowed:
            return _detail(
                400,
                f"output_dimension {output_dimension} is not supported by model '{model}'; "
                f"supported: {list(allowed)}",
            )
        output_dtype = body.get("output_dtype") or "float"
        if output_dtype not in OUTPUT_DTYPES:
            return _detail(400, f"output_dtype must be one of {list(OUTPUT_DTYPES)}")
        if output_dtype != "float" and model not in QUANTIZED_MODELS:
            return _detail(400, f"output_dtype '{output_dtype}' is not supported by '{model}'")
        if body.get("encoding_format") not in (None, "base64"):
            return _detail(400, "encoding_format must be null or 'base64'")
        window = self.context_window or context
        texts, total = [], 0
        for index, text in enumerate(inputs):
            tokens = tokens_of(text)
            if tokens > window:
                if not body.get("truncation", True):
                    return _detail(
                        400,
                        f"Request to model '{model}' failed. The example at index {index} in "
                        "your batch has too many tokens and does not fit into the model's "
                        f"context window of {window} tokens. Please lower the number of tokens "
                        "in the listed example(s) or use truncation.",
                    )
                text, tokens = text.encode()[: window * 4].decode(errors="ignore"), window
            texts.append(text)
            total += tokens
        limit = self.max_batch_tokens or batch_tokens
        if total > limit:
            return _detail(
                400,
                f"Request to model '{model}' failed. The max allowed tokens per submitted batch "
                f"is {limit}. Your batch has {total} tokens after truncation. Please lower the "
                "number of tokens in the batch.",
            )
        vectors = [vector_for(model, input_type, text, output_dimension) for text in texts]
        if output_dtype != "float":
            data = [
                {"object": "embedding", "embedding": codes, "index": index}
                for index, codes in enumerate(quantized(np.stack(vectors), output_dtype))
            ]
        else:
            data = embedding_items(vectors, as_base64=body.get("encoding_format") == "base64")
        data.reverse()  # clients must order by index
        return Response(
            200,
            {"object": "list", "data": data, "model": model, "usage": {"total_tokens": total}},
        )
