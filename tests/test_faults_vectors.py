"""Fault injection: every vector that leaves the engine has the right count, order and width, and
is finite. A provider answer that is not is refused with an error naming the provider and the
item, nothing of it reaches the cache, and a bad cache entry is a miss, never an answer."""

from __future__ import annotations

import hashlib
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedify import Capabilities, EmbeddingModel, Role
from embedify.cache import EmbeddingCache
from embedify.errors import BadResponseError, EmbeddingJobError
from embedify.responses import ordered_embeddings, vector_matrix
from embedify.testing import LoopbackServer, Request, Response

pytestmark = pytest.mark.faults

WIDTH = 4
TEXTS = ["alpha", "beta", "gamma"]


def good_vector(text: str, width: int = WIDTH) -> np.ndarray:
    raw = np.frombuffer(hashlib.shake_256(text.encode()).digest(2 * width), dtype="<i2")
    vector = raw.astype(np.float32)
    unit: np.ndarray = vector / np.linalg.norm(vector)
    return unit


class Scripted(EmbeddingModel):
    """A provider whose next answers the test writes (then good vectors): only the engine's
    checks stand between a hostile answer and the caller."""

    provider = "scripted"
    default_model_id = "hostile"
    capabilities = Capabilities(dimension=WIDTH)

    def __init__(self, model_id: str | None = None, *, answers: Any = (), **options: Any):
        super().__init__(model_id, **options)
        self.answers = list(answers)
        self.calls = 0

    def embed_batch(self, texts: list[str], role: Role) -> Any:
        self.calls += 1
        if self.answers:
            return self.answers.pop(0)
        return np.stack([good_vector(text) for text in texts])


class Learning(Scripted):
    """Like a compatible server's unknown model: the width is learned from the first answer."""

    capabilities = Capabilities(dimension=None)


class Matryoshka(Scripted):
    capabilities = Capabilities(dimension=WIDTH, dimensions_mode="matryoshka")


def scripted(answer: Any, kind: type[Scripted] = Scripted, **options: Any) -> Scripted:
    return kind(answers=[answer], max_concurrency=1, batch_size=len(TEXTS), **options)


def rows(*vectors: Any) -> list[Any]:
    return list(vectors)


G = [0.5] * WIDTH  # a good row
HOSTILE = {
    # name: (answer for TEXTS, words the error must hold)
    "empty vectors": (rows([], [], []), ["no values"]),
    "ragged": (rows(G, [0.5] * 3, G), ["input 1", "3 values"]),
    "a string in a vector": (rows(G, G, ["0.5", 0.5, 0.5, 0.5]), ["input 2", "str"]),
    "a bool in a vector": (rows(G, [True, 0.5, 0.5, 0.5], G), ["input 1", "bool"]),
    "a null in a vector": (rows(G, [None, 0.5, 0.5, 0.5], G), ["input 1", "NoneType"]),
    "a nested list": (rows(G, G, [[0.5], 0.5, 0.5, 0.5]), ["input 2", "list"]),
    "NaN": (rows(G, G, [0.5, math.nan, 0.5, 0.5]), ["input 2", "NaN or infinite"]),
    "infinity": (rows([-math.inf, 0.5, 0.5, 0.5], G, G), ["input 0", "NaN or infinite"]),
    "beyond float32": (rows(G, [1e39, 0.5, 0.5, 0.5], G), ["input 1", "NaN or infinite"]),
    "one vector short": (rows(G, G), ["2 vectors for 3 inputs"]),
    "one vector too many": (rows(G, G, G, G), ["4 vectors for 3 inputs"]),
    "a string row": (rows(G, "not a vector", G), ["input 1"]),
    "not a list": ({"0": G}, ["dict"]),
    "nothing": (None, ["NoneType"]),
    "bool array": (np.ones((3, WIDTH), dtype=bool), ["bool"]),
    "string array": (np.full((3, WIDTH), "0.5"), ["str"]),
    "object array": (np.array([G, G, G], dtype=object), ["object"]),
    "flat array": (np.zeros(3 * WIDTH, dtype=np.float32), ["shape"]),
    "array with NaN": (
        np.array([G, G, [0.5, 0.5, 0.5, math.nan]], dtype=np.float32),
        ["input 2", "NaN or infinite"],
    ),
    "empty array": (np.zeros((3, 0), dtype=np.float32), ["no values"]),
}


@pytest.mark.parametrize("kind", [Scripted, Learning], ids=["known width", "learned width"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_answer_is_refused_naming_provider_and_item(
    case: str, kind: type[Scripted], tmp_path: Path
) -> None:
    answer, words = HOSTILE[case]
    cache = tmp_path / "cache.sqlite3"
    model = scripted(answer, kind, cache=cache)
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(TEXTS)
    errors = set(map(type, caught.value.failures.values()))
    assert errors == {BadResponseError}, caught.value
    message = str(caught.value.failures[0])
    for word in ["scripted:hostile", *words]:
        assert word in message, message
    assert np.isnan(caught.value.partial).all()
    assert EmbeddingCache.open(cache).stats()["entries"] == 0  # nothing of it was kept
    assert model.dimension == kind.dimension  # nor learned from it
    again = model.embed(TEXTS)  # the next call goes to the provider and gets good vectors
    assert model.calls == 2
    assert np.allclose(again, [good_vector(text) for text in TEXTS])
    assert EmbeddingCache.open(cache).stats()["entries"] == len(TEXTS)


def test_a_vector_of_the_wrong_width_is_refused() -> None:
    model = scripted(rows(G, G, [0.5] * (WIDTH + 1)))
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(TEXTS)
    assert "5 values" in str(caught.value.failures[0])


def test_a_learned_width_holds_for_the_next_answers() -> None:
    model = Learning(answers=[[G], [[0.5] * 3]], max_concurrency=1)
    model.embed(["one"])
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(["two"])
    assert "expected 4" in str(caught.value.failures[0])


@pytest.mark.parametrize("route", ["embed", "embed one", "embed_query", "aembed", "report"])
async def test_every_route_checks_the_answer(route: str) -> None:
    inputs = 1 if route in ("embed one", "embed_query") else len(TEXTS)
    model = scripted([[math.nan] * WIDTH] * inputs)
    calls = {
        "embed": lambda: model.embed(TEXTS),
        "embed one": lambda: model.embed(TEXTS[0]),
        "embed_query": lambda: model.embed_query(TEXTS[0]),
        "report": lambda: model.embed_with_report(TEXTS),
    }
    with pytest.raises(EmbeddingJobError) as caught:
        if route == "aembed":
            await model.aembed(TEXTS)
        else:
            calls[route]()
    assert "NaN or infinite" in str(caught.value)


def test_a_matryoshka_cut_of_huge_values_is_still_a_unit_vector() -> None:
    """float32 holds 3e38, but the square of its norm does not: the cut must not turn it to 0."""
    model = scripted([[3e38, 3e38, 1.0, 1.0]] * len(TEXTS), Matryoshka, dimensions=2)
    vectors = model.embed(TEXTS)
    assert np.isfinite(vectors).all()
    assert np.allclose(vectors, [[math.sqrt(0.5), math.sqrt(0.5)]] * len(TEXTS))


# -- the cache ---------------------------------------------------------------------------------


def write_raw_entry(path: Path, model: Scripted, text: str, vector: np.ndarray) -> None:
    """Write a row the way an older or broken version could have, under the real key."""
    EmbeddingCache.open(path)  # creates the file and its table
    key = EmbeddingCache.key(model.info.fingerprint(), "document", text)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT OR REPLACE INTO embeddings (key, dimension, vector) VALUES (?, ?, ?)",
            (key, len(vector), np.asarray(vector, dtype="<f4").tobytes()),
        )


BAD_ENTRIES = {
    "NaN": np.array([math.nan, 0.5, 0.5, 0.5]),
    "infinity": np.array([0.5, math.inf, 0.5, 0.5]),
    "too narrow": np.array([0.5, 0.5, 0.5]),
    "too wide": np.array([0.5] * (WIDTH + 1)),
    "empty": np.array([]),
}


@pytest.mark.parametrize("kind", [Scripted, Learning], ids=["known width", "learned width"])
@pytest.mark.parametrize("entry", list(BAD_ENTRIES))
def test_a_bad_cache_entry_is_a_miss_and_is_replaced(
    entry: str, kind: type[Scripted], tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite3"
    model = kind(cache=path, max_concurrency=1)
    model.embed(["warm up"])  # a learned width is known from here on
    write_raw_entry(path, model, "alpha", BAD_ENTRIES[entry])
    result = model.embed_with_report(TEXTS)
    assert np.allclose(result.vectors, [good_vector(text) for text in TEXTS])
    assert result.report.cached == 0 and model.calls == 2
    (stored,) = EmbeddingCache.open(path).get_many(
        [EmbeddingCache.key(model.info.fingerprint(), "document", "alpha")]
    )
    assert stored is not None and np.allclose(stored, good_vector("alpha"))


def test_a_width_only_the_cache_knows_is_checked_not_crashed_on(tmp_path: Path) -> None:
    """Before a learned width is known, the cache's entries give it: an answer of another
    width is a clear error, not a numpy crash in a task nobody awaits."""
    path = tmp_path / "cache.sqlite3"
    model = Learning(cache=path, max_concurrency=1)
    write_raw_entry(path, model, "alpha", np.array([0.6, 0.8, 0.0]))
    with pytest.raises(EmbeddingJobError) as caught:
        model.embed(TEXTS)
    assert "4 values; expected 3" in str(caught.value.failures[1])
    assert caught.value.partial[0].tolist() == pytest.approx([0.6, 0.8, 0.0])


def test_good_cache_entries_are_still_served(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    Learning(cache=path).embed(TEXTS)
    model = Learning(cache=path)
    result = model.embed_with_report(TEXTS)
    assert result.report.cached == len(TEXTS) and model.calls == 0


# -- the shared validators, directly -----------------------------------------------------------


def items(*indices: Any) -> list[dict[str, Any]]:
    return [
        {"index": index, "embedding": [float(position)]} for position, index in enumerate(indices)
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (items(0, True, 2), ["item 1", "index True", "bool"]),
        (items(0, 1.0, 2), ["item 1", "index 1.0", "float"]),
        (items(0, "1", 2), ["item 1", "index '1'", "str"]),
        (items(0, None, 2), ["item 1", "NoneType"]),
        (items(0, -1, 2), ["item 1", "index -1", "0..2"]),
        (items(0, 1, 3), ["item 2", "index 3", "0..2"]),
        (items(0, 1, 1), ["items 1 and 2", "index 1"]),
        (items(0, 1), ["2 embeddings for 3 inputs"]),
        (items(0, 1, 2, 3), ["4 embeddings for 3 inputs"]),
        ([{"index": 0, "embedding": [0.5]}, {"embedding": [0.5]}, {"index": 2}], ["item 1"]),
        (
            [{"index": 0, "embedding": [0.5]}, {"index": 1, "embedding": [0.5]}, {"index": 2}],
            ["item 2", "embedding"],
        ),
        (
            [{"index": 0, "embedding": [0.5]}, [1, [0.5]], {"index": 2, "embedding": [0.5]}],
            ["item 1", "list"],
        ),
        ({"index": 0}, ["dict"]),
    ],
)
def test_indexed_items_are_refused_unless_each_input_has_one(data: Any, words: list[str]) -> None:
    with pytest.raises(BadResponseError) as caught:
        ordered_embeddings(data, 3, source="acme:m1")
    for word in ["acme:m1", *words]:
        assert word in str(caught.value), str(caught.value)


def test_indexed_items_come_back_in_index_order() -> None:
    data = [{"index": index, "embedding": [float(index)]} for index in (2, 0, 1)]
    assert ordered_embeddings(data, 3, source="acme:m1") == [[0.0], [1.0], [2.0]]


def test_base64_rows_are_decoded_and_checked() -> None:
    import base64

    encoded = [
        base64.b64encode(np.array(row, "<f4").tobytes()).decode() for row in ([1, 2], [3, 4])
    ]
    assert vector_matrix(encoded, 2, source="acme:m1").tolist() == [[1, 2], [3, 4]]
    nan = base64.b64encode(np.array([1, math.nan], "<f4").tobytes()).decode()
    with pytest.raises(BadResponseError, match=r"input 1.*NaN or infinite"):
        vector_matrix([encoded[0], nan], 2, source="acme:m1")
    for broken in ["AAAA=", "!!!!", "", "AAA"]:  # not base64, empty, not whole float32s
        with pytest.raises(BadResponseError, match=r"acme:m1.*input 1"):
            vector_matrix([encoded[0], broken], 2, source="acme:m1")


def test_a_secret_in_a_hostile_answer_is_not_echoed() -> None:
    """The error shows types and positions, not the server's values (which may echo a key)."""
    with pytest.raises(BadResponseError) as caught:
        vector_matrix([[0.5], ["sk-secret-value"]], 2, source="acme:m1")
    assert "sk-secret" not in str(caught.value)


# -- a real provider over the wire (the openai plugin, when installed) ---------------------------


def test_empty_vectors_from_a_compatible_server_are_refused_and_not_cached(tmp_path: Path) -> None:
    testing = pytest.importorskip("embedify_openai.testing", reason="needs embedify-openai")
    import embedify

    fake = testing.FakeOpenAI(ignore_base64=True, self_hosted=True)
    hostile = {"on": True}

    def handler(request: Request) -> Response:
        if hostile["on"] and request.path.endswith("/embeddings"):
            inputs = request.json()["input"]
            data = [
                {"object": "embedding", "index": i, "embedding": []} for i in range(len(inputs))
            ]
            return Response(200, {"object": "list", "data": data, "model": "m"})
        return fake(request)

    cache = tmp_path / "cache.sqlite3"
    with LoopbackServer(handler) as server:
        model = embedify.get_model(
            "openai:compatible-model", base_url=server.url, api_key=testing.API_KEY, cache=cache
        )
        with pytest.raises(EmbeddingJobError) as caught:
            model.embed(TEXTS)
        assert "openai:compatible-model" in str(caught.value) and "no values" in str(caught.value)
        assert model.dimension is None
        assert EmbeddingCache.open(cache).stats()["entries"] == 0
        hostile["on"] = False
        vectors = model.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 64) and np.isfinite(vectors).all()
    assert EmbeddingCache.open(cache).stats()["entries"] == len(TEXTS)
