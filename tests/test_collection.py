"""Collections: strict ids, a documented upsert, and damaged files named in the error."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedify
from embedify.collection import Collection, Item, read_collection_info
from embedify.errors import ConfigurationError
from embedify.fake import FakeEmbeddingModel
from embedify.model import Role, Vectors
from embedify.scoring import Metric, top_k


@pytest.fixture
def collection(tmp_path: Path) -> Collection:
    return Collection(tmp_path / "col.sqlite3", embedify.get_model("fake:256"))


@pytest.mark.parametrize(
    ("bad_id", "error"),
    [(None, "item 1 has the id None"), ("", "item 1 has the id ''"), (3, "item 1 has the id 3")],
)
def test_ids_are_non_empty_strings(collection: Collection, bad_id: Any, error: str) -> None:
    with pytest.raises(TypeError, match=error):
        collection.upsert([("a", "first", {}), (bad_id, "second", {})])
    assert len(collection) == 0  # nothing half-written


def test_duplicate_ids_in_one_call_are_refused(collection: Collection) -> None:
    with pytest.raises(ValueError, match="items 0 and 2 have the same id 'a'"):
        collection.upsert([("a", "x", {}), ("b", "y", {}), ("a", "z", {})])


def test_upsert_takes_items_or_parallel_lists(collection: Collection) -> None:
    result = collection.upsert(ids=["a", "b"], texts=["the cat", "the dog"])
    assert (result.written, result.embedded, result.unchanged) == (2, 2, 0)
    result = collection.upsert(
        [Item("a", "the cat", {"n": 1}), ("c", "a bird", {}), ("d", "a fish")]
    )
    assert (result.written, result.unchanged) == (2, 1)
    assert collection.query("the cat", k=1)[0].metadata == {"n": 1}
    collection.upsert(ids=["b"], texts=["the dog"], metadatas=[{"kind": "pet"}])
    assert collection.query("the dog", k=1)[0].metadata == {"kind": "pet"}
    with pytest.raises(ValueError, match="same length, not 2, 1 and 2"):
        collection.upsert(ids=["x", "y"], texts=["one"], metadatas=[{}, {}])
    with pytest.raises(TypeError, match="not both"):
        collection.upsert([("a", "x", {})], ids=["a"], texts=["x"])
    with pytest.raises(TypeError, match="wrap a single id"):
        collection.upsert(ids="a", texts="x")
    with pytest.raises(TypeError, match="item 0 \\('m'\\): metadata"):
        collection.upsert([("m", "x", {"when": object()})])


def test_damaged_files_are_named(tmp_path: Path) -> None:
    model = embedify.get_model("fake:256")
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    with pytest.raises(ConfigurationError, match=f"{empty} is an empty file"):
        Collection(empty, model)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 200)
    with pytest.raises(ConfigurationError, match=f"{garbage} is damaged or not an embedify"):
        Collection(garbage, model)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(ConfigurationError, match=f"{foreign} is a SQLite file but not"):
        Collection(foreign, model)


def test_a_truncated_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    full = Collection(path, embedify.get_model("fake:256"))
    full.upsert([(f"id{i}", f"text number {i} " * 40, {}) for i in range(300)])
    full._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full._connection.close()
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)
    with pytest.raises(ConfigurationError, match=f"{path} is damaged"):
        Collection(path, embedify.get_model("fake:256")).query("text", k=3)


def test_collection_info_without_a_model(collection: Collection) -> None:
    collection.upsert([("a", "x", {})])
    info = read_collection_info(collection.path)
    assert info.items == 1 and info.fingerprint.startswith("fake:256@")


class _Lengths(FakeEmbeddingModel):
    """Vectors whose lengths differ (the number of words), so the three metrics rank apart."""

    capabilities = replace(FakeEmbeddingModel.capabilities, normalized=False)

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        vectors = np.asarray(super().embed_batch(texts, role))
        return vectors * np.array([[1.0 + len(text.split())] for text in texts], np.float32)


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_query_ranks_and_scores_as_top_k_over_the_stored_vectors(
    tmp_path: Path, metric: Metric
) -> None:
    model = _Lengths("32")
    texts = [" ".join(f"w{(i * 7 + j) % 13}" for j in range(1 + i % 9)) for i in range(60)]
    collection = Collection(tmp_path / "col.sqlite3", model)
    collection.upsert(ids=[f"t{i}" for i in range(60)], texts=texts)
    query = "w3 w5 w8 w3"
    indices, scores = top_k(model.embed_query(query), model.embed(texts), 10, metric)
    for _ in range(2):  # the first query loads the vectors, the second reuses them
        hits = collection.query(query, k=10, metric=metric)
        assert [hit.id for hit in hits] == [f"t{i}" for i in indices.tolist()]
        assert np.allclose([hit.score for hit in hits], scores, rtol=1e-5, atol=1e-5)
