"""A SQLite store of embedded texts that re-embeds only what changed.

Each item has an id, its text, JSON metadata, a hash of its content and its vector. A
collection remembers the fingerprint of the model that filled it: using it with a model that
would produce different vectors is an error rather than silently wrong search results.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedify.cache import connect
from embedify.errors import ConfigurationError
from embedify.model import EmbeddingModel
from embedify.similarity import Metric, top_k

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
"""
_TABLES = {"meta", "items"}


@dataclass
class Item:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass
class Hit(Item):
    score: float


@dataclass(frozen=True)
class UpsertResult:
    """What an ``upsert`` did: ``written`` items were new or changed and got a vector, of which
    ``embedded`` were computed now and ``cached`` came from the model's cache; ``unchanged``
    items kept their vector (their metadata is still updated)."""

    written: int
    embedded: int
    cached: int
    unchanged: int


@dataclass(frozen=True)
class CollectionInfo:
    path: Path
    fingerprint: str
    items: int
    bytes: int


class ModelMismatchError(ConfigurationError):
    """The collection was filled by another model, whose vectors are not comparable."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextmanager
def _file_errors(path: Path) -> Iterator[None]:
    """SQLite errors as one error naming the file and what to do about it."""
    try:
        yield
    except sqlite3.OperationalError as error:
        raise ConfigurationError(f"cannot use the collection file {path}: {error}.") from None
    except sqlite3.DatabaseError as error:
        raise ConfigurationError(
            f"{path} is damaged or not an embedify collection ({error}); delete it to rebuild "
            "the collection, or choose another file."
        ) from None


def _open(path: Path) -> sqlite3.Connection:
    """Connect to a collection file, refusing empty files and other SQLite databases."""
    if path.is_file() and path.stat().st_size == 0:
        raise ConfigurationError(
            f"{path} is an empty file (0 bytes), not an embedify collection; delete it to start "
            "a new collection there."
        )
    with _file_errors(path):
        connection = connect(path)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    if tables and not _TABLES.issubset(tables):
        connection.close()
        raise ConfigurationError(
            f"{path} is a SQLite file but not an embedify collection; choose another file."
        )
    return connection


def read_collection_info(path: Path) -> CollectionInfo:
    """The model fingerprint and item count of a collection file, without loading a model."""
    connection = _open(path)
    try:
        with _file_errors(path):
            row = connection.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            (count,) = connection.execute("SELECT COUNT(*) FROM items").fetchone()
    finally:
        connection.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    return CollectionInfo(path, row[0] if row else "?", int(count), size)


def _as_items(
    items: Iterable[Item | tuple[str, str, Mapping[str, Any]]] | None,
    ids: Sequence[str] | None,
    texts: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any]] | None,
) -> list[Item]:
    if items is not None:
        if ids is not None or texts is not None or metadatas is not None:
            raise TypeError("upsert takes items, or ids= and texts= (and metadatas=), not both")
        wanted = []
        for index, item in enumerate(items):
            if isinstance(item, Item):
                wanted.append(item)
            elif isinstance(item, tuple) and len(item) in (2, 3):
                wanted.append(Item(item[0], item[1], dict(item[2]) if len(item) == 3 else {}))
            else:
                raise TypeError(
                    f"item {index} is {type(item).__name__}; give Item(id, text, metadata) or "
                    "an (id, text, metadata) tuple"
                )
    else:
        if ids is None or texts is None:
            raise TypeError("upsert needs items, or ids= and texts= (and optionally metadatas=)")
        if isinstance(ids, str) or isinstance(texts, str):
            raise TypeError("ids= and texts= are lists; wrap a single id and text in lists")
        id_list, text_list = list(ids), list(texts)
        meta_list = list(metadatas) if metadatas is not None else [{}] * len(id_list)
        if not len(id_list) == len(text_list) == len(meta_list):
            raise ValueError(
                f"ids, texts and metadatas must have the same length, not {len(id_list)}, "
                f"{len(text_list)} and {len(meta_list)}"
            )
        wanted = [Item(i, t, dict(m)) for i, t, m in zip(id_list, text_list, meta_list)]
    first_seen: dict[str, int] = {}
    for index, item in enumerate(wanted):
        if not isinstance(item.id, str) or not item.id.strip():
            raise TypeError(f"item {index} has the id {item.id!r}; ids must be non-empty strings")
        if not isinstance(item.text, str):
            raise TypeError(f"item {index} ({item.id!r}) has a {type(item.text).__name__} text")
        if item.id in first_seen:
            raise ValueError(
                f"items {first_seen[item.id]} and {index} have the same id {item.id!r}"
            )
        first_seen[item.id] = index
    return wanted


class Collection:
    """Vectors of one model, by item id, in a SQLite file."""

    def __init__(self, path: str | Path, model: EmbeddingModel) -> None:
        self.path = Path(path)
        self.model = model
        self.fingerprint = model.info.fingerprint()
        self._lock = threading.Lock()
        self._connection = _open(self.path)
        self._matrix: tuple[list[str], np.ndarray[Any, Any]] | None = None
        with _file_errors(self.path), self._connection:
            self._connection.executescript(_SCHEMA)
            row = self._connection.execute(
                "SELECT value FROM meta WHERE key = 'fingerprint'"
            ).fetchone()
            if row is None:
                self._connection.execute(
                    "INSERT INTO meta VALUES ('fingerprint', ?)", (self.fingerprint,)
                )
        if row is not None and row[0] != self.fingerprint:
            raise ModelMismatchError(
                f"{self.path} was built with model {row[0]}, not {self.fingerprint}; their "
                "vectors are not comparable. Use the same model, or a new collection file."
            )

    def __len__(self) -> int:
        with _file_errors(self.path):
            (count,) = self._connection.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(count)

    def ids(self) -> set[str]:
        with _file_errors(self.path):
            return {row[0] for row in self._connection.execute("SELECT id FROM items")}

    def upsert(
        self,
        items: Iterable[Item | tuple[str, str, Mapping[str, Any]]] | None = None,
        *,
        ids: Sequence[str] | None = None,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> UpsertResult:
        """Add or update items; only new or changed texts are embedded.

        Give ``items`` (``Item``s or ``(id, text, metadata)`` tuples), or parallel lists
        ``ids=``, ``texts=`` and optionally ``metadatas=``. Ids are non-empty strings, unique
        within the call; metadata is JSON-serialisable.
        """
        wanted = _as_items(items, ids, texts, metadatas)
        encoded = []
        for index, item in enumerate(wanted):
            try:
                encoded.append(json.dumps(item.metadata))
            except (TypeError, ValueError) as error:
                raise TypeError(f"item {index} ({item.id!r}): metadata {error}") from None
        with _file_errors(self.path):
            known = dict(self._connection.execute("SELECT id, content_hash FROM items").fetchall())
        changed = [
            (item, meta)
            for item, meta in zip(wanted, encoded)
            if known.get(item.id) != content_hash(item.text)
        ]
        changed_ids = {item.id for item, _ in changed}
        result = (
            self.model.embed_with_report([item.text for item, _ in changed], "document")
            if changed
            else None
        )
        with _file_errors(self.path), self._lock, self._connection:
            if result is not None:
                self._connection.executemany(
                    "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            item.id,
                            item.text,
                            meta,
                            content_hash(item.text),
                            np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                        )
                        for (item, meta), vector in zip(changed, result.vectors)
                    ],
                )
            self._connection.executemany(
                "UPDATE items SET metadata = ? WHERE id = ?",
                [(meta, i.id) for i, meta in zip(wanted, encoded) if i.id not in changed_ids],
            )
            self._matrix = None
        return UpsertResult(
            written=len(changed),
            embedded=result.report.embedded if result else 0,
            cached=result.report.cached if result else 0,
            unchanged=len(wanted) - len(changed),
        )

    def delete(self, ids: Iterable[str]) -> None:
        with _file_errors(self.path), self._lock, self._connection:
            self._connection.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
            self._matrix = None

    def query(self, text: str, k: int = 10, metric: Metric = "cosine") -> list[Hit]:
        """The ``k`` items most similar to ``text`` (embedded with the query role)."""
        ids, matrix = self._load()
        if not ids:
            return []
        indices, scores = top_k(self.model.embed_query(text), matrix, k, metric)
        hits = []
        with _file_errors(self.path):
            for index, score in zip(indices.tolist(), scores.tolist()):
                item_id = ids[index]
                text_, metadata = self._connection.execute(
                    "SELECT text, metadata FROM items WHERE id = ?", (item_id,)
                ).fetchone()
                hits.append(Hit(item_id, text_, json.loads(metadata), float(score)))
        return hits

    def _load(self) -> tuple[list[str], np.ndarray[Any, Any]]:
        if self._matrix is None:
            with _file_errors(self.path):
                rows = self._connection.execute(
                    "SELECT id, vector FROM items ORDER BY id"
                ).fetchall()
            ids = [row[0] for row in rows]
            blob = b"".join(row[1] for row in rows)
            matrix = (
                np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1)
                if rows
                else np.zeros((0, 0), np.float32)
            )
            self._matrix = (ids, matrix)
        return self._matrix
