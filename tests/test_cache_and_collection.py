from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

import embedify
from embedify.cache import EmbeddingCache
from embedify.collection import Collection
from embedify.errors import ConfigurationError


def test_cache_hits_are_exact_and_keyed_by_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first = embedify.get_model("fake:32", cache=path).embed_with_report(["a", "b"])
    again = embedify.get_model("fake:32", cache=path).embed_with_report(["b", "a", "c"])
    assert again.report.cached == 2 and again.report.embedded == 1
    assert np.array_equal(again.vectors[:2], first.vectors[::-1])
    shorter = embedify.get_model("fake:32", cache=path, dimensions=8).embed_with_report(["a"])
    assert shorter.report.cached == 0 and shorter.vectors.shape == (1, 8)
    query = embedify.get_model("fake:32", cache=path).embed_with_report(["a"], "query")
    assert query.report.cached == 0  # roles are part of the key


def _writer(path: str, worker: int) -> None:
    model = embedify.get_model("fake:16", cache=Path(path), batch_size=5)
    model.embed([f"text {worker}-{i}" for i in range(200)] + ["shared text"])


def test_cache_is_safe_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    assert EmbeddingCache.open(path).stats()["entries"] == 3 * 200 + 1


def test_collection_reembeds_only_changes(tmp_path: Path) -> None:
    model = embedify.get_model("fake:32")
    collection = Collection(tmp_path / "col.sqlite3", model)
    items = [("a", "the cat sat", {"n": 1}), ("b", "dogs bark loudly", {"n": 2})]
    assert collection.upsert(items).written == 2
    assert collection.upsert(items).written == 0
    changed = collection.upsert([("a", "the cat sat", {"n": 9}), ("b", "dogs bark at night", {})])
    assert changed.written == 1
    hits = collection.query("the cat", k=1)
    assert hits[0].id == "a" and hits[0].metadata == {"n": 9}
    collection.delete(["a"])
    assert collection.ids() == {"b"} and len(collection) == 1


def test_collection_refuses_another_model(tmp_path: Path) -> None:
    Collection(tmp_path / "col.sqlite3", embedify.get_model("fake:32")).upsert([("a", "x", {})])
    with pytest.raises(ConfigurationError, match="not comparable"):
        Collection(tmp_path / "col.sqlite3", embedify.get_model("fake:16"))
