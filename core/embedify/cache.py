"""A persistent embedding cache in SQLite, safe to share between processes.

Keys are a hash of the model fingerprint, the role and the text as it was sent (cut when it
was over the model's limit; with the truncate policy for providers that cut inputs
themselves), so changing anything that changes the vectors (model, revision, endpoint,
dimensions, normalisation, role mapping, truncation) misses the cache instead of returning
another vector. The engine writes each finished request in its own
transaction, so an interrupted job loses at most the requests in flight; a write that fails
(disk full) warns once and the job goes on without the cache. A damaged file, or another
program's database, is a ``StorageError`` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedify.config import cache_dir
from embedify.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    key BLOB PRIMARY KEY,
    dimension INTEGER NOT NULL,
    vector BLOB NOT NULL
) WITHOUT ROWID;
"""
_COLUMNS = ["key", "dimension", "vector"]
_COLUMNS_OF = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
_SELECT_CHUNK = 500
_FIXES = {
    "cache": "delete it (it only holds vectors, which are computed again)",
    "collection": "delete it to rebuild the collection, or choose another file",
}


def default_cache_path() -> Path:
    return cache_dir() / "embeddings.sqlite3"


@contextmanager
def storage_errors(path: Path, kind: Literal["cache", "collection"]) -> Iterator[None]:
    """SQLite errors as one ``StorageError`` naming the file and what to do about it."""
    try:
        yield
    except sqlite3.OperationalError as error:  # locked, disk full, read-only, cannot open
        raise StorageError(
            f"cannot use the {kind} file {path} ({error}).", path=str(path)
        ) from None
    except sqlite3.DatabaseError as error:  # not a database, malformed
        raise StorageError(
            f"{path} is damaged or not an embedify {kind} ({error}); {_FIXES[kind]}.",
            path=str(path),
        ) from None


def connect(
    path: Path, kind: Literal["cache", "collection"], tables: Mapping[str, Sequence[str]]
) -> sqlite3.Connection:
    """Open a SQLite file for concurrent use by several processes (WAL, busy timeout).

    A file that holds tables but not ``tables`` (name: columns) is another program's database:
    it is refused before anything, even the journal mode, is written to it.
    """
    if path.is_dir():
        raise StorageError(
            f"{path} is a folder, not a {kind} file; give the path of a file.", path=str(path)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
    try:
        used = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone()
        if used and any(
            [column for (column,) in connection.execute(_COLUMNS_OF, (name,))] != list(columns)
            for name, columns in tables.items()
        ):
            raise StorageError(
                f"{path} is a SQLite file but not an embedify {kind}; choose another file.",
                path=str(path),
            )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except (StorageError, sqlite3.Error):
        connection.close()
        raise
    return connection


def read_cache_stats(path: Path) -> dict[str, int] | None:
    """``EmbeddingCache.stats`` of the file at ``path`` without creating or changing anything
    (``embedify cache info`` is a read), or None when there is no file."""
    if not path.exists():
        return None
    if path.is_dir():
        raise StorageError(f"{path} is a folder, not a cache file.", path=str(path))
    # Without a journal nothing is pending, and "immutable" opens without creating one; with a
    # journal (a writer has the file open) a read-only open reads through it.
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    with storage_errors(path, "cache"):
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
        try:
            columns = [c for (c,) in connection.execute(_COLUMNS_OF, ("embeddings",))]
            if columns != _COLUMNS:
                raise StorageError(
                    f"{path} is not an embedify cache; give the path of one.", path=str(path)
                )
            (count,) = connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        finally:
            connection.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    return {"entries": int(count), "bytes": size}


class EmbeddingCache:
    """Vectors by (model fingerprint, role, text sent)."""

    _open: dict[Path, EmbeddingCache] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with storage_errors(path, "cache"):
            self._connection = connect(path, "cache", {"embeddings": _COLUMNS})
            try:
                with self._connection:
                    self._connection.executescript(_SCHEMA)
            except sqlite3.Error:
                self._connection.close()
                raise

    @classmethod
    def open(cls, where: bool | Path | str) -> EmbeddingCache:
        """The cache at ``where`` (``True`` for the user cache), shared within the process."""
        path = default_cache_path() if where is True else Path(str(where))
        path = path.expanduser().resolve()
        with cls._open_lock:
            if path not in cls._open:
                try:
                    cls._open[path] = cls(path)
                except OSError as error:
                    raise StorageError(
                        f"cache={str(where)!r}: cannot open {path} as a cache ({error}).",
                        path=str(path),
                    ) from None
            return cls._open[path]

    @staticmethod
    def key(fingerprint: str, role: str, text: str, variant: str = "") -> bytes:
        """The key of ``text`` embedded for ``role`` by the model with ``fingerprint``;
        ``variant`` names anything else the provider was sent that changes the vector."""
        digest = hashlib.sha256()
        for part in (fingerprint, role, text, *([variant] if variant else [])):
            encoded = part.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
        return digest.digest()

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray[Any, Any] | None]:
        found: dict[bytes, np.ndarray[Any, Any]] = {}
        with storage_errors(self.path, "cache"), self._lock:
            for start in range(0, len(keys), _SELECT_CHUNK):
                chunk = keys[start : start + _SELECT_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._connection.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype="<f4")
        return [found.get(key) for key in keys]

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray[Any, Any]) -> None:
        """Store the vectors in one transaction: all of them, or none (``StorageError``)."""
        little_endian = np.ascontiguousarray(vectors, dtype="<f4")
        rows = [
            (key, little_endian.shape[1], row.tobytes()) for key, row in zip(keys, little_endian)
        ]
        with storage_errors(self.path, "cache"), self._lock, self._connection:
            self._connection.executemany(
                "INSERT OR REPLACE INTO embeddings (key, dimension, vector) VALUES (?, ?, ?)", rows
            )

    def stats(self) -> dict[str, int]:
        with storage_errors(self.path, "cache"), self._lock:
            (count,) = self._connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        size = sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()
        )
        return {"entries": int(count), "bytes": size}

    def clear(self) -> int:
        with storage_errors(self.path, "cache"), self._lock:
            with self._connection:
                deleted = self._connection.execute("DELETE FROM embeddings").rowcount
            self._connection.execute("VACUUM")
        return int(deleted)
