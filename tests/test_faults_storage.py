"""Fault injection for the files embedify keeps: the embedding cache and collections.

Other processes writing the same collection, another model's width, damaged files, a full
disk, and a writer killed in the middle of a transaction.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import multiprocessing
import os
import sqlite3
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedify
from embedify.cache import EmbeddingCache
from embedify.cli import cli
from embedify.collection import Collection, ModelMismatchError
from embedify.errors import ConfigurationError, StorageError, StorageWarning

pytestmark = pytest.mark.faults

MODEL = "fake:32"


def _spawned(target: Callable[..., None], *args: object) -> int | None:
    """Run ``target`` in a fresh interpreter (its own SQLite connections) and wait for it."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(120)
    if process.is_alive():  # hung: fail the test, leave nothing running
        process.kill()
        process.join()
        return None
    return process.exitcode


# -- an open collection sees what other processes commit ---------------------------------------


def _delete_and_add(path: str) -> None:
    collection = Collection(path, embedify.get_model(MODEL))
    collection.delete(["a"])
    collection.upsert([("c", "a bird sings", {"by": "other"})])


def _re_add(path: str) -> None:
    Collection(path, embedify.get_model(MODEL)).upsert([("a", "a cat again", {"back": True})])


def _hit_ids(collection: Collection) -> set[str]:
    return {hit.id for hit in collection.query("cat", k=100)}


def test_an_open_collection_sees_other_processes_writes_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    collection = Collection(path, embedify.get_model(MODEL))
    collection.upsert([("a", "the cat sat", {}), ("b", "dogs bark", {})])
    assert _hit_ids(collection) == {"a", "b"}
    assert _spawned(_delete_and_add, str(path)) == 0
    hits = collection.query("cat", k=100)
    assert {hit.id for hit in hits} == {"b", "c"}
    assert [hit.metadata for hit in hits if hit.id == "c"] == [{"by": "other"}]
    assert _spawned(_re_add, str(path)) == 0
    again = {hit.id: hit for hit in collection.query("cat", k=100)}
    assert again.keys() == {"a", "b", "c"} and again["a"].text == "a cat again"


def test_a_query_reloads_vectors_only_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    reader = Collection(path, embedify.get_model(MODEL))
    reader.upsert([("a", "the cat sat", {})])
    statements: list[str] = []
    reader._connection.set_trace_callback(statements.append)
    reader.query("cat")
    reader.query("cat")
    loads = [s for s in statements if "vector FROM items" in s]
    assert len(loads) == 1  # the second query only checked the version
    Collection(path, embedify.get_model(MODEL)).upsert([("b", "a dog", {})])
    assert {hit.id for hit in reader.query("cat")} == {"a", "b"}
    assert len([s for s in statements if "vector FROM items" in s]) == 2


operations = st.lists(
    st.tuples(
        st.integers(0, 1),  # which of the two open handles
        st.sampled_from(["upsert", "delete", "query"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["the cat", "a dog", "some fish"]),
    ),
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=operations)
def test_two_handles_on_one_file_always_agree(
    tmp_path: Path, steps: list[tuple[int, str, str, str]]
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.sqlite3"  # examples share tmp_path
    model = embedify.get_model(MODEL)
    handles = [Collection(path, model), Collection(path, model)]
    expected: dict[str, str] = {}
    for which, operation, item_id, text in steps:
        handle = handles[which]
        if operation == "upsert":
            handle.upsert([(item_id, text, {"text": text})])
            expected[item_id] = text
        elif operation == "delete":
            handle.delete([item_id])
            expected.pop(item_id, None)
        for reader in handles:
            hits = reader.query("cat", k=10)
            assert {hit.id: hit.text for hit in hits} == expected
            assert all(hit.metadata == {"text": hit.text} for hit in hits)


# -- one width, one model per collection -------------------------------------------------------


class ServedModel(embedify.EmbeddingModel):
    """An endpoint whose width is learned from its first answer (like ``openai:`` behind a
    ``base_url``); ``served_width`` is what the server currently sends."""

    served_width = 32

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest(), np.uint8) for t in texts]
        return np.stack([np.resize(row, self.served_width) for row in rows]).astype(np.float32)


def _file_state(path: Path) -> tuple[bytes, ...]:
    """The database and what its write-ahead log holds (not -shm, the readers' index)."""
    wal = path.with_name(path.name + "-wal")
    return (path.read_bytes(), wal.read_bytes() if wal.exists() else b"")


def _rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT * FROM items ORDER BY id").fetchall()


def test_vectors_of_another_width_are_refused_before_any_write(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    collection = Collection(path, ServedModel("m"))
    collection.upsert([("a", "the cat sat", {}), ("b", "dogs bark", {})])
    rows, state = _rows(path), _file_state(path)
    narrower = ServedModel("m")
    narrower.served_width = 16  # the endpoint now serves another model, same fingerprint
    reopened = Collection(path, narrower)
    with pytest.raises(ModelMismatchError, match=f"{path} holds vectors of width 32.*width 16"):
        reopened.upsert([("c", "a bird", {}), ("a", "the cat moved", {})])
    assert _rows(path) == rows and _file_state(path) == state
    assert {hit.id for hit in collection.query("cat")} == {"a", "b"}


def test_reopening_with_another_width_fails_before_any_write(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    Collection(path, embedify.get_model("fake:32")).upsert([("a", "x", {})])
    rows, state = _rows(path), _file_state(path)
    with pytest.raises(ModelMismatchError) as refused:
        Collection(path, embedify.get_model("fake:16"))
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    assert "fake:32@" in message and "width 32" in message
    assert "fake:16@" in message and "width 16" in message
    assert _rows(path) == rows and _file_state(path) == state


def test_a_query_by_a_model_now_of_another_width_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    Collection(path, ServedModel("m")).upsert([("a", "the cat sat", {})])
    narrower = ServedModel("m")
    narrower.served_width = 16
    with pytest.raises(ModelMismatchError, match=f"{path} holds vectors of width 32.*width 16"):
        Collection(path, narrower).query("cat")


def test_a_file_holding_several_widths_is_named(tmp_path: Path) -> None:
    """Written by a version that accepted another width: say so, not a numpy reshape error."""
    path = tmp_path / "col.sqlite3"
    Collection(path, ServedModel("m")).upsert([("a", "the cat sat", {})])
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM meta WHERE key = 'width'")
        vector = np.ones(16, "<f4").tobytes()
        connection.execute("INSERT INTO items VALUES ('b', 'dogs', '{}', 'h', ?)", (vector,))
    with pytest.raises(StorageError, match=f"{path} holds vectors of several widths.*delete"):
        Collection(path, ServedModel("m")).query("cat")


def test_another_model_of_the_same_width_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    Collection(path, ServedModel("model-a")).upsert([("a", "x", {})])
    state = _file_state(path)
    with pytest.raises(ModelMismatchError, match=r"not comparable.*delete .* to rebuild it"):
        Collection(path, ServedModel("model-b"))  # also 32 wide: another vector space
    assert _file_state(path) == state


# -- damaged files -----------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _directory(path: Path) -> None:
    path.mkdir()


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
        connection.execute("INSERT INTO people VALUES ('ada')")


def _filled_cache(path: Path) -> None:
    embedify.get_model("fake:256", cache=path).embed([f"text {i}" for i in range(300)])
    store = EmbeddingCache._open.pop(path.resolve())
    store._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._connection.close()


def _truncated_cache(path: Path) -> None:
    _filled_cache(path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def _scrambled_cache(path: Path) -> None:
    """The schema (page 1) is intact, so the file opens; the vectors' pages are zeroed."""
    _filled_cache(path)
    with path.open("r+b") as file:
        file.seek(4096)
        file.write(bytes(path.stat().st_size // 2))


DAMAGE = {
    "garbage": _garbage,
    "directory": _directory,
    "foreign": _foreign,
    "truncated": _truncated_cache,
    "scrambled": _scrambled_cache,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_names_the_file_and_the_fix(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "cache.sqlite3"
    DAMAGE[damage](path)
    before = _file_state(path) if path.is_file() else None
    with pytest.raises(ConfigurationError) as refused:
        embedify.get_model("fake:256", cache=path).embed([f"text {i}" for i in range(300)])
    message = str(refused.value)
    assert str(path) in message and "\n" not in message
    assert any(fix in message for fix in ("delete it", "choose another file", "give a file"))
    assert refused.value.__context__ is None or refused.value.__suppress_context__
    if before is None:
        return  # a folder: the command line refuses it as a --path value
    assert isinstance(refused.value, StorageError) and refused.value.path == str(path)
    assert _file_state(path) == before  # nothing written into a file that is not ours
    cli_run = CliRunner().invoke(cli, ["cache", "info", "--path", str(path)])
    assert cli_run.exit_code == 1 and isinstance(cli_run.exception, SystemExit)
    assert cli_run.output.startswith("Error: ") and cli_run.output.count("\n") == 1
    assert str(path) in cli_run.output


def test_damage_found_mid_job_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    _scrambled_cache(path)
    EmbeddingCache.open(path)  # opens: the damage is found by the job's lookups
    with pytest.raises(StorageError, match=f"{path} is damaged .*; delete it"):
        embedify.get_model("fake:256", cache=path).embed(["text 1"])


def test_an_empty_cache_file_is_used_as_a_new_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.touch()
    embedify.get_model(MODEL, cache=path).embed(["a"])
    assert embedify.get_model(MODEL, cache=path).embed_with_report(["a"]).report.cached == 1


@pytest.mark.parametrize("damage", ["garbage", "foreign"])
def test_search_with_a_damaged_collection_is_one_line(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat sat on the mat\n")
    index = tmp_path / "index.sqlite3"
    DAMAGE[damage](index)
    result = CliRunner().invoke(
        cli, ["search", str(folder), "cat", "-m", MODEL, "--index", str(index)]
    )
    assert result.exit_code not in (0, None) and isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert str(index) in result.output


def test_a_collection_that_is_a_folder_says_so(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    path.mkdir()
    with pytest.raises(ConfigurationError, match=f"{path} is a folder"):
        Collection(path, embedify.get_model(MODEL))


# -- a cache write that fails (disk full) ------------------------------------------------------


def _fill_the_disk(path: Path) -> EmbeddingCache:
    """SQLite's own "database or disk is full": the file may not grow past its current size."""
    store = EmbeddingCache.open(path)
    (pages,) = store._connection.execute("PRAGMA page_count").fetchone()
    store._connection.execute(f"PRAGMA max_page_count = {pages}")
    return store


def test_a_full_disk_is_reported_once_and_the_job_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cache.sqlite3"
    texts = [f"text number {i}" for i in range(40)]
    expected = embedify.get_model("fake:1024").embed(texts)
    store = _fill_the_disk(path)
    model = embedify.get_model("fake:1024", cache=path, batch_size=4)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        result = model.embed_with_report(texts)
        gc.collect()  # an unretrieved task exception is logged when the task is collected
    assert np.array_equal(result.vectors, expected) and result.report.embedded == 40
    reported = [w for w in caught if issubclass(w.category, StorageWarning)]
    assert len(reported) == 1, [str(w.message) for w in caught]
    assert str(path) in str(reported[0].message) and "full" in str(reported[0].message)
    assert "never retrieved" not in caplog.text + capsys.readouterr().err
    store._connection.execute("PRAGMA max_page_count = 1073741823")
    assert model.embed_with_report(texts).report.cached == 0  # nothing was half-stored
    assert model.embed_with_report(texts).report.cached == 40  # the next job used the cache


def test_a_read_only_cache_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    EmbeddingCache.open(path)
    store = EmbeddingCache._open[path.resolve()]
    store._connection.close()
    store._connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    with pytest.warns(StorageWarning, match="readonly") as caught:
        vectors = embedify.get_model(MODEL, cache=path, batch_size=2).embed(["a", "b", "c", "d"])
    assert vectors.shape == (4, 32) and len(caught) == 1


def test_a_full_disk_under_a_collection_writes_nothing_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "col.sqlite3"
    collection = Collection(path, embedify.get_model("fake:1024"))
    collection.upsert([("a", "the cat sat", {})])
    (pages,) = collection._connection.execute("PRAGMA page_count").fetchone()
    collection._connection.execute(f"PRAGMA max_page_count = {pages}")
    many = [(f"id{i}", f"text {i}", {}) for i in range(50)]
    with pytest.raises(StorageError, match=f"cannot use the collection file {path} .*full"):
        collection.upsert(many)
    assert collection.ids() == {"a"}  # the whole upsert was rolled back
    collection._connection.execute("PRAGMA max_page_count = 1073741823")
    assert collection.upsert(many).written == 50 and len(collection) == 51


# -- a writer killed mid-transaction leaves a consistent file ---------------------------------


def _killed_mid_write(path: str, what: str) -> None:
    statements = 0

    def die_after_a_few(statement: str) -> None:
        nonlocal statements
        if statement.startswith("INSERT"):
            statements += 1
            if statements == 50:
                os._exit(3)

    if what == "collection":
        collection = Collection(path, embedify.get_model(MODEL))
        collection._connection.set_trace_callback(die_after_a_few)
        collection.upsert([(f"id{i}", f"text {i}", {}) for i in range(200)])
    else:
        model = embedify.get_model(MODEL, cache=Path(path), batch_size=30)
        model.embed(["warm up"])
        EmbeddingCache.open(Path(path))._connection.set_trace_callback(die_after_a_few)
        model.embed([f"text {i}" for i in range(200)])
    os._exit(0)


@pytest.mark.parametrize("what", ["collection", "cache"])
def test_a_writer_killed_mid_transaction_leaves_whole_requests(tmp_path: Path, what: str) -> None:
    path = tmp_path / f"{what}.sqlite3"
    assert _spawned(_killed_mid_write, str(path), what) == 3
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    if what == "collection":
        assert len(Collection(path, embedify.get_model(MODEL))) == 0
    else:
        stored = EmbeddingCache.open(path).stats()["entries"]
        assert stored == 1 + 30 * (stored // 30)  # the warm-up, then whole requests only
