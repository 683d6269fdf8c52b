"""Hostile answers for a provider's fault-injection tests (``test_faults_<provider>.py``).

A broken or malicious server garbles a good answer in a few known ways: indices that are
booleans, duplicated, missing or out of range; vectors that are empty, ragged, not finite or not
numbers; one vector too few or too many. Each case here is a garbling and the words the refusal
must contain. Subclass :class:`HostileIndexedAnswers` (OpenAI-style indexed ``data``) or
:class:`HostileVectorAnswers` (a plain list of vectors) in your ``test_faults_<name>.py``, as
you subclass the conformance suite, and say how to serve and how to build your model::

    from embedify.testing.hostile import HostileIndexedAnswers, garbled, inside

    class TestHostileAnswers(HostileIndexedAnswers):
        source = "mine:small"  # what each refusal must name

        def answers(self, garble, wire):  # wire: "floats" or "base64"
            return garbled(FakeMine(), inside("data", garble))

        def model(self, url, wire, **options):
            return get_model("mine:small", base_url=url, api_key="k", **options)

Other shapes use :func:`garbled` and :func:`refused` directly.

:data:`INDEXED_CASES` garble OpenAI-style ``data`` (``[{"index": i, "embedding": ...}]``,
floats or base64); :data:`VECTOR_CASES` garble a plain list of vectors (TEI, Cohere). Every
garbling takes the decoded list and returns the list to send. Answers carry three inputs:
embed :data:`TEXTS`.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.model import EmbeddingModel
from embedify.testing.loopback import LoopbackServer, Request, Response

TEXTS = ["first text", "second text", "third text"]
Garbling = Callable[[list[Any]], list[Any]]
Case = tuple[Garbling, list[str]]


def garbled(
    fake: Callable[[Request], Response], rewrite: Callable[[Any], Any]
) -> Callable[[Request], Response]:
    """``fake``'s handler, with every successful JSON answer's body passed through ``rewrite``
    (answers that are not JSON, such as TEI's empty ``/health``, go out as they are)."""

    def handler(request: Request) -> Response:
        response = fake(request)
        if response.status != 200:
            return response
        body = response.body
        if isinstance(body, (bytes, str)):
            try:
                body = json.loads(body)
            except ValueError:
                return response
        if not isinstance(body, (dict, list)) or request.path.endswith("/info"):
            return response
        return Response(200, rewrite(body))

    return handler


def inside(key: str, garble: Garbling) -> Callable[[Any], Any]:
    """A body rewrite that garbles the list at ``body[key]`` (OpenAI's ``"data"``)."""
    return lambda body: {**body, key: garble(body[key])}


def refused(
    error: EmbeddingJobError, words: list[str], *, cache: Path, secret: str | None = None
) -> None:
    """Every input failed with a ``BadResponseError`` whose message holds ``words``, no
    ``secret`` shows, and nothing of the answer reached the ``cache`` file."""
    assert {type(failure) for failure in error.failures.values()} == {BadResponseError}
    message = str(error.failures[0])
    for word in words:
        assert word in message, message
    if secret is not None:
        assert secret not in str(error)
    assert EmbeddingCache.open(cache).stats()["entries"] == 0


# -- OpenAI-style data: [{"index": i, "embedding": [...] or "base64"}] -------------------------


def _like(item: dict[str, Any], values: list[Any]) -> Any:
    """``values`` in the item's encoding (base64 float32, or a JSON list)."""
    if isinstance(item["embedding"], str):
        return base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode()
    return values


def _width(item: dict[str, Any]) -> int:
    value = item["embedding"]
    return len(base64.b64decode(value)) // 4 if isinstance(value, str) else len(value)


def _item(data: list[dict[str, Any]], index: int) -> dict[str, Any]:
    return next(item for item in data if item["index"] == index)


def _in_place(change: Callable[[list[Any]], object]) -> Garbling:
    def garble(data: list[Any]) -> list[Any]:
        change(data)
        return data

    return garble


def _index(position: int, value: Any) -> Garbling:
    return _in_place(lambda data: data[position].__setitem__("index", value))


def _vector(index: int, make: Callable[[int], list[Any]]) -> Garbling:
    def change(data: list[dict[str, Any]]) -> None:
        item = _item(data, index)
        item["embedding"] = _like(item, make(_width(item)))

    return _in_place(change)


def _embedding(index: int, value: Any) -> Garbling:
    return _in_place(lambda data: _item(data, index).__setitem__("embedding", value))


def _value(index: int, column: int, value: Any) -> Garbling:
    return _in_place(lambda data: _item(data, index)["embedding"].__setitem__(column, value))


INDEXED_CASES: dict[str, Case] = {
    "bool index": (_index(1, True), ["data item 1", "index True (bool)"]),
    "float index": (_index(1, 1.0), ["data item 1", "index 1.0 (float)"]),
    "string index": (_index(1, "1"), ["data item 1", "index '1' (str)"]),
    "null index": (_index(1, None), ["data item 1", "NoneType"]),
    "negative index": (_index(0, -1), ["data item 0", "index -1", "0..2"]),
    "index out of range": (_index(2, 3), ["data item 2", "index 3", "0..2"]),
    "duplicate index": (
        _in_place(lambda data: data[2].__setitem__("index", data[0]["index"])),
        ["data items 0 and 2 both have index"],
    ),
    "no index": (_in_place(lambda data: data[1].pop("index")), ["data item 1", "index None"]),
    "no embedding": (
        _in_place(lambda data: data[1].pop("embedding")),
        ["data item 1", "no embedding"],
    ),
    "one missing": (lambda data: data[:-1], ["2 embeddings for 3 inputs"]),
    "one too many": (lambda data: [*data, dict(data[0])], ["4 embeddings for 3 inputs"]),
    "empty vectors": (
        _in_place(lambda data: [item.__setitem__("embedding", _like(item, [])) for item in data]),
        ["no values"],
    ),
    "ragged": (_vector(1, lambda n: [0.5] * (n - 1)), ["input 1", "values"]),
    "NaN": (_vector(2, lambda n: [math.nan] * n), ["input 2", "NaN or infinite"]),
    "infinity": (_vector(0, lambda n: [0.5] * (n - 1) + [-math.inf]), ["input 0", "infinite"]),
    "not a list": (_embedding(1, {"a": 1}), ["input 1", "dict"]),
    "broken base64": (_embedding(1, "AAAA"), ["input 1", "not whole float32s"]),  # 3 bytes
}
"""Garblings of OpenAI-style ``data``, for answers in floats and in base64 alike."""

INDEXED_FLOAT_CASES: dict[str, Case] = {
    "a string in a vector": (_value(1, 3, "0.5"), ["input 1", "str"]),
    "a bool in a vector": (_value(0, 0, True), ["input 0", "bool"]),
}
"""Garblings that only a JSON list of floats can carry (base64 holds float32s only)."""


# -- a plain list of vectors: [[...], [...], [...]] --------------------------------------------


def _at(row: int, column: int, value: Any) -> Garbling:
    return _in_place(lambda vectors: vectors[row].__setitem__(column, value))


VECTOR_CASES: dict[str, Case] = {
    "one missing": (lambda vectors: vectors[:-1], ["2 vectors for 3 inputs"]),
    "one too many": (lambda vectors: [*vectors, vectors[0]], ["4 vectors for 3 inputs"]),
    "empty vectors": (lambda vectors: [[] for _ in vectors], ["no values"]),
    "ragged": (lambda vectors: [vectors[0], vectors[1][:-1], vectors[2]], ["input 1", "values"]),
    "NaN": (_at(2, 0, math.nan), ["input 2", "NaN or infinite"]),
    "infinity": (_at(0, 5, -math.inf), ["input 0", "NaN or infinite"]),
    "beyond float32": (_at(1, 5, 1e39), ["input 1", "NaN or infinite"]),
    "a string in a vector": (_at(1, 3, "0.5"), ["input 1", "str"]),
    "a bool in a vector": (_at(0, 0, True), ["input 0", "bool"]),
    "a null in a vector": (_at(2, 1, None), ["input 2", "NoneType"]),
}
"""Garblings of a list with one vector per input, which carries no index: count and width are
what a provider can check."""


# -- the suites ---------------------------------------------------------------------------------

Handler = Callable[[Request], Response]


class HostileVectorAnswers:
    """Every garbling of :attr:`cases` is refused naming :attr:`source` and the item, with
    nothing cached and no :attr:`secret` shown, on every wire format in :attr:`wires`."""

    cases: ClassVar[dict[str, Case]] = VECTOR_CASES
    float_only_cases: ClassVar[dict[str, Case]] = {}  # what base64 cannot carry
    wires: ClassVar[tuple[str, ...]] = ("floats",)
    source: ClassVar[str]
    secret: ClassVar[str | None] = None

    def answers(self, garble: Garbling, wire: str) -> Handler:
        """Your fake's handler with ``garble`` applied to the vectors of each answer."""
        raise NotImplementedError

    def model(self, url: str, wire: str, **options: Any) -> EmbeddingModel:
        """Your model on the server at ``url``, asking for ``wire``, with ``options``."""
        raise NotImplementedError

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if {"case", "wire"} <= set(metafunc.fixturenames):
            pairs = [(case, wire) for case in self.cases for wire in self.wires]
            pairs += [(case, "floats") for case in self.float_only_cases if "floats" in self.wires]
            metafunc.parametrize(("case", "wire"), pairs)
        elif "wire" in metafunc.fixturenames:
            metafunc.parametrize("wire", self.wires)

    def test_a_hostile_answer_is_refused_and_not_cached(
        self, case: str, wire: str, tmp_path: Path
    ) -> None:
        garble, words = {**self.cases, **self.float_only_cases}[case]
        cache = tmp_path / "cache.sqlite3"
        with (
            LoopbackServer(self.answers(garble, wire)) as server,
            pytest.raises(EmbeddingJobError) as caught,
        ):
            self.model(server.url, wire, cache=cache, max_concurrency=1).embed(TEXTS)
        refused(caught.value, [self.source, *words], cache=cache, secret=self.secret)


class HostileIndexedAnswers(HostileVectorAnswers):
    """:class:`HostileVectorAnswers` for OpenAI-style indexed ``data``, in floats and base64;
    and the rows of a valid answer in any order come back in input order."""

    cases = INDEXED_CASES
    float_only_cases = INDEXED_FLOAT_CASES
    wires = ("floats", "base64")

    def test_rows_follow_their_index_in_any_order(self, wire: str) -> None:
        texts = [f"text number {i}" for i in range(12)]
        with LoopbackServer(self.answers(lambda data: data, wire)) as server:
            expected = self.model(server.url, wire, cache=False).embed(texts)
        shuffled = self.answers(lambda data: random.Random(7).sample(data, len(data)), wire)
        with LoopbackServer(shuffled) as server:
            vectors = self.model(server.url, wire, cache=False).embed(texts)
        assert np.allclose(vectors, expected, atol=1e-6)
        assert not np.allclose(vectors[0], vectors[1])  # the fake's vectors differ by text
