"""A SQLite store of embedded texts that re-embeds only what changed.

Each item has an id, its text, JSON metadata, a hash of its content and its vector. A
collection remembers the fingerprint of the model that filled it: using it with a model that
would produce different vectors is an error rather than silently wrong search results.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
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


@dataclass
class Item:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass
class Hit(Item):
    score: float


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Collection:
    """Vectors of one model, by item id, in a SQLite file."""

    def __init__(self, path: str | Path, model: EmbeddingModel) -> None:
        self.path = Path(path)
        self.model = model
        self.fingerprint = model.info.fingerprint()
        self._lock = threading.Lock()
        self._connection = connect(self.path)
        self._matrix: tuple[list[str], np.ndarray[Any, Any]] | None = None
        with self._connection:
            self._connection.executescript(_SCHEMA)
            row = self._connection.execute(
                "SELECT value FROM meta WHERE key = 'fingerprint'"
            ).fetchone()
            if row is None:
                self._connection.execute(
                    "INSERT INTO meta VALUES ('fingerprint', ?)", (self.fingerprint,)
                )
            elif row[0] != self.fingerprint:
                raise ConfigurationError(
                    f"{self.path} was built with model {row[0]}, not {self.fingerprint}; their "
                    "vectors are not comparable. Use the same model, or a new collection file."
                )

    def __len__(self) -> int:
        (count,) = self._connection.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(count)

    def ids(self) -> set[str]:
        return {row[0] for row in self._connection.execute("SELECT id FROM items")}

    def upsert(self, items: Iterable[Item | tuple[str, str, Mapping[str, Any]]]) -> int:
        """Add or update items; only new or changed texts are embedded. Returns how many were."""
        wanted = [
            item if isinstance(item, Item) else Item(item[0], item[1], dict(item[2]))
            for item in items
        ]
        if not wanted:
            return 0
        known = dict(self._connection.execute("SELECT id, content_hash FROM items").fetchall())
        changed = [item for item in wanted if known.get(item.id) != content_hash(item.text)]
        changed_ids = {item.id for item in changed}
        vectors = self.model.embed_documents([item.text for item in changed]) if changed else None
        with self._lock, self._connection:
            if vectors is not None:
                self._connection.executemany(
                    "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            item.id,
                            item.text,
                            json.dumps(item.metadata),
                            content_hash(item.text),
                            np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                        )
                        for item, vector in zip(changed, vectors)
                    ],
                )
            self._connection.executemany(
                "UPDATE items SET metadata = ? WHERE id = ?",
                [(json.dumps(i.metadata), i.id) for i in wanted if i.id not in changed_ids],
            )
            self._matrix = None
        return len(changed)

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock, self._connection:
            self._connection.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
            self._matrix = None

    def query(self, text: str, k: int = 10, metric: Metric = "cosine") -> list[Hit]:
        """The ``k`` items most similar to ``text`` (embedded with the query role)."""
        ids, matrix = self._load()
        if not ids:
            return []
        indices, scores = top_k(self.model.embed_query(text), matrix, k, metric)
        hits = []
        for index, score in zip(indices.tolist(), scores.tolist()):
            item_id = ids[index]
            text_, metadata = self._connection.execute(
                "SELECT text, metadata FROM items WHERE id = ?", (item_id,)
            ).fetchone()
            hits.append(Hit(item_id, text_, json.loads(metadata), float(score)))
        return hits

    def _load(self) -> tuple[list[str], np.ndarray[Any, Any]]:
        if self._matrix is None:
            rows = self._connection.execute("SELECT id, vector FROM items ORDER BY id").fetchall()
            ids = [row[0] for row in rows]
            blob = b"".join(row[1] for row in rows)
            matrix = (
                np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1)
                if rows
                else np.zeros((0, 0), np.float32)
            )
            self._matrix = (ids, matrix)
        return self._matrix
