"""A SQLite store of embedded texts that re-embeds only what changed.

Each item has an id, its text, JSON metadata, a hash of its content and its vector. A
collection remembers the fingerprint of the model that filled it and the width of its vectors:
using it with a model that would produce different vectors is an error, raised before anything
is written, rather than silently wrong search results. There is no override: to change models,
delete the file and rebuild. Several processes may share one file; a query sees every write
committed before it (a cheap version check, the vectors are read again only when they changed).

``precision="binary"`` (or ``"int8"``) keeps only quantized codes in memory (1/32 or 1/4 of
float32) and searches those; the float vectors stay on disk, and the best
``k * rescore_multiplier`` candidates are scored again with them, the way sentence-transformers
and Qdrant rescore (by default 4 candidates a result for int8, 10 for binary). The precision is
fixed when the collection is created, and so are the int8 ranges (measured from the float
vectors of ``calibration=`` texts, or of the built-in set; see :mod:`embedify.quantize`).
"""

from __future__ import annotations

import base64
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

from embedify.cache import connect, storage_errors
from embedify.errors import ConfigurationError, StorageError
from embedify.model import EmbeddingModel
from embedify.quantize import Precision, builtin_calibration, calibrated_ranges, quantize
from embedify.scoring import Metric, top_k

COLLECTION_PRECISIONS: tuple[Precision, ...] = ("float32", "int8", "binary")
# Candidates rescored per result by default: the least that kept recall@10 >= 0.95 against
# float32 in bench/precision_bench.py (binary x4 gave 0.93, x10 0.98; int8 x4 1.00).
RESCORE_MULTIPLIERS: dict[Precision, int] = {"float32": 1, "int8": 4, "binary": 10}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS codes (id TEXT PRIMARY KEY, code BLOB NOT NULL);
"""
_TABLES = {"meta": ["key", "value"], "items": ["id", "text", "metadata", "content_hash", "vector"]}


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


def _open(path: Path) -> sqlite3.Connection:
    """Connect to a collection file, refusing empty files and other SQLite databases."""
    if path.is_file() and path.stat().st_size == 0:
        raise StorageError(
            f"{path} is an empty file (0 bytes), not an embedify collection; delete it to start "
            "a new collection there.",
            path=str(path),
        )
    with storage_errors(path, "collection"):
        return connect(path, "collection", _TABLES)


def _stored_model(connection: sqlite3.Connection) -> tuple[str, int | None] | None:
    """The fingerprint and vector width a collection was built with (``None``: a new file).
    Files written before the width was stored give it by their first vector."""
    if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return None
    meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    if "fingerprint" not in meta:
        return None
    if "width" in meta:
        return meta["fingerprint"], int(meta["width"])
    row = connection.execute("SELECT length(vector) FROM items LIMIT 1").fetchone()
    return meta["fingerprint"], (row[0] // 4 if row else None)


def _described(fingerprint: str, width: int | None) -> str:
    return fingerprint if width is None else f"{fingerprint} (width {width})"


def read_collection_info(path: Path) -> CollectionInfo:
    """The model fingerprint and item count of a collection file, without loading a model."""
    connection = _open(path)
    try:
        with storage_errors(path, "collection"):
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
    """Vectors of one model, by item id, in a SQLite file; ``precision`` and
    ``rescore_multiplier`` as in the module docs."""

    def __init__(
        self,
        path: str | Path,
        model: EmbeddingModel,
        *,
        precision: Precision = "float32",
        rescore_multiplier: int | None = None,
        calibration: Sequence[str] | None = None,
    ) -> None:
        if precision not in COLLECTION_PRECISIONS:
            raise ConfigurationError(
                f"Collection(precision={precision!r}): use one of "
                f"{', '.join(map(repr, COLLECTION_PRECISIONS))} (uint8 and ubinary hold the "
                "same information as int8 and binary)."
            )
        if model.options.precision != "float32":
            raise ConfigurationError(
                f"{model!r} returns {model.options.precision} vectors; a collection keeps float "
                f"vectors to rescore with. Give it the float32 model and "
                f"Collection(..., precision={model.options.precision!r}) instead."
            )
        if calibration is not None and precision != "int8":
            raise ConfigurationError(
                f"calibration= sets the ranges of an int8 collection; this one is {precision}: "
                "drop calibration=."
            )
        if rescore_multiplier is not None and rescore_multiplier < 1:
            raise ConfigurationError(
                f"rescore_multiplier={rescore_multiplier}: give 1 or more (1: no rescoring)."
            )
        self.path = Path(path)
        self.model = model
        self.precision: Precision = precision
        self.rescore_multiplier = rescore_multiplier or RESCORE_MULTIPLIERS[precision]
        self.calibration = list(calibration) if calibration is not None else None
        self.fingerprint = model.info.fingerprint()
        self._ranges: np.ndarray[Any, Any] | None = None
        self._lock = threading.Lock()
        self._connection = _open(self.path)
        # What a query searches: float vectors as unit rows (with their norms), or codes.
        self._matrix: tuple[list[str], np.ndarray[Any, Any]] | None = None
        self._norms: np.ndarray[Any, Any] | None = None
        self._version = -1  # SQLite's data_version when the matrix was read
        try:
            with storage_errors(self.path, "collection"):
                stored = _stored_model(self._connection)
            width = model.info.output_dimension
            if stored is not None and (
                stored[0] != self.fingerprint
                or (stored[1] is not None and width is not None and stored[1] != width)
            ):
                raise ModelMismatchError(
                    f"{self.path} was built with {_described(*stored)}, not "
                    f"{_described(self.fingerprint, width)}; their vectors are not comparable. "
                    f"Use the model that built it, or delete {self.path} to rebuild it with "
                    "this one, or choose another file."
                )
            with storage_errors(self.path, "collection"), self._connection:
                self._connection.executescript(_SCHEMA)
                self._connection.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('fingerprint', ?)", (self.fingerprint,)
                )
                # A file from before precisions existed holds float32 vectors only.
                new = stored is None
                self._connection.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('precision', ?)",
                    (precision if new else "float32",),
                )
                meta = dict(self._connection.execute("SELECT key, value FROM meta").fetchall())
            if meta["precision"] != precision:
                raise ConfigurationError(
                    f"{self.path} was built with precision={meta['precision']!r}; open it with "
                    f"Collection(..., precision={meta['precision']!r}), or delete it to rebuild "
                    f"it with precision={precision!r}."
                )
            if "ranges" in meta:
                blob = base64.b64decode(meta["ranges"])
                self._ranges = np.frombuffer(blob, dtype="<f4").reshape(2, -1)
        except BaseException:
            self._connection.close()
            raise

    def __len__(self) -> int:
        with storage_errors(self.path, "collection"):
            (count,) = self._connection.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(count)

    def ids(self) -> set[str]:
        with storage_errors(self.path, "collection"):
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
        with storage_errors(self.path, "collection"):
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
        if result is not None and self.precision == "int8" and self._ranges is None:
            self._calibrate()
        with storage_errors(self.path, "collection"), self._lock, self._connection:
            # One write transaction from the width check to the last row: another process
            # cannot slip vectors of another width in between.
            self._connection.execute("BEGIN IMMEDIATE")
            if result is not None:
                self._claim_width(int(result.vectors.shape[1]))
                if self.precision != "float32":
                    codes = quantize(result.vectors, self.precision, self._ranges)
                    self._connection.executemany(
                        "INSERT OR REPLACE INTO codes VALUES (?, ?)",
                        [(item.id, code.tobytes()) for (item, _), code in zip(changed, codes)],
                    )
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
        rows = [(i,) for i in ids]
        with storage_errors(self.path, "collection"), self._lock, self._connection:
            self._connection.executemany("DELETE FROM items WHERE id = ?", rows)
            self._connection.executemany("DELETE FROM codes WHERE id = ?", rows)
            self._matrix = None

    def _calibrate(self) -> None:
        """Fix the int8 ranges from the model's calibration texts, once, in the file: codes
        written later must mean what earlier ones meant."""
        texts = self.calibration or builtin_calibration()
        ranges = calibrated_ranges(self.model.embed(texts, "document"))
        encoded = base64.b64encode(np.ascontiguousarray(ranges, dtype="<f4").tobytes())
        with storage_errors(self.path, "collection"), self._lock, self._connection:
            self._connection.execute(
                "INSERT OR IGNORE INTO meta VALUES ('ranges', ?)", (encoded.decode(),)
            )
            (stored,) = self._connection.execute(
                "SELECT value FROM meta WHERE key = 'ranges'"
            ).fetchone()
        self._ranges = np.frombuffer(base64.b64decode(stored), dtype="<f4").reshape(2, -1)

    @property
    def index_bytes(self) -> int:
        """Bytes of vectors or codes held in memory for search (after the first query)."""
        if self._matrix is None:
            return 0
        return int(self._matrix[1].nbytes) + (0 if self._norms is None else int(self._norms.nbytes))

    def _claim_width(self, width: int) -> None:
        """Record the collection's vector width on its first write; refuse vectors of another
        width (an endpoint now serving another model) before any row is written."""
        built_with = _stored_model(self._connection)
        stored = built_with[1] if built_with else None
        if stored is not None and stored != width:
            raise ModelMismatchError(
                f"{self.path} holds vectors of width {stored}, but {self.model!r} now returns "
                f"width {width}; nothing was written. Use the model that built it, or delete "
                f"{self.path} to rebuild it with this one."
            )
        self._connection.execute("INSERT OR IGNORE INTO meta VALUES ('width', ?)", (str(width),))

    def query(self, text: str, k: int = 10, metric: Metric = "cosine") -> list[Hit]:
        """The ``k`` items most similar to ``text`` (embedded with the query role).

        Sees every write committed before it, by this object or any other connection."""
        with self._reading():
            if not self._load()[0]:
                return []
        vector = self.model.embed_query(text)
        with self._reading():
            ids, matrix = self._load()
            if not ids:
                return []
            built_with = _stored_model(self._connection)
            stored = built_with[1] if built_with else None
            if stored is not None and len(vector) != stored:
                raise ModelMismatchError(
                    f"{self.path} holds vectors of width {stored}, but {self.model!r} "
                    f"now returns width {len(vector)}; use the model that built it."
                )
            if self.precision == "float32":
                indices, scores = self._exact(vector, matrix, k, metric)
                chosen = [ids[index] for index in indices.tolist()]
            else:
                chosen, scores = self._rescored(vector, ids, matrix, k, metric)
            marks = ",".join("?" * len(chosen))
            rows = {
                item_id: (text_, metadata)
                for item_id, text_, metadata in self._connection.execute(
                    f"SELECT id, text, metadata FROM items WHERE id IN ({marks})", chosen
                )
            }
        return [
            Hit(item_id, rows[item_id][0], json.loads(rows[item_id][1]), float(score))
            for item_id, score in zip(chosen, scores.tolist())
        ]

    def _exact(
        self, vector: np.ndarray[Any, Any], units: np.ndarray[Any, Any], k: int, metric: Metric
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Top ``k`` over the float vectors, held as unit rows and their norms: cosine, the
        usual query, is then one product, with no corpus normalised again at each query."""
        assert self._norms is not None
        if metric == "cosine":
            length = float(np.linalg.norm(vector))
            return top_k(vector / length if length else vector, units, k, "dot")
        return top_k(vector, units * self._norms[:, None], k, metric)

    def _rescored(
        self,
        vector: np.ndarray[Any, Any],
        ids: list[str],
        codes: np.ndarray[Any, Any],
        k: int,
        metric: Metric,
    ) -> tuple[list[str], np.ndarray[Any, Any]]:
        """The best ``k`` of the codes' best ``k * rescore_multiplier``, scored with the float
        vectors on disk (inside the caller's read transaction)."""
        query_code = quantize(vector[None, :], self.precision, self._ranges)[0]
        found, _ = top_k(
            query_code, codes, k * self.rescore_multiplier, metric, precision=self.precision
        )
        candidates = [ids[index] for index in found.tolist()]
        marks = ",".join("?" * len(candidates))
        floats = dict(
            self._connection.execute(
                f"SELECT id, vector FROM items WHERE id IN ({marks})", candidates
            ).fetchall()
        )
        matrix = np.stack([np.frombuffer(floats[i], dtype="<f4") for i in candidates])
        best, scores = top_k(vector, matrix, k, metric)
        return [candidates[index] for index in best.tolist()], scores

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction: the version check, the vectors and the rows it reads all come
        from the same commit, whatever other processes write meanwhile."""
        with storage_errors(self.path, "collection"), self._lock:
            self._connection.execute("BEGIN")
            try:
                yield
            finally:
                self._connection.rollback()

    def _load(self) -> tuple[list[str], np.ndarray[Any, Any]]:
        """The ids and vectors, read again only when the file changed since the last read:
        SQLite's ``data_version`` moves when another connection commits; this object's own
        writes drop the matrix."""
        (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        if self._matrix is None or version != self._version:
            table, column = (
                ("items", "vector") if self.precision == "float32" else ("codes", "code")
            )
            rows = self._connection.execute(
                f"SELECT id, {column} FROM {table} ORDER BY id"
            ).fetchall()
            if len({len(row[1]) for row in rows}) > 1:
                raise StorageError(
                    f"{self.path} holds vectors of several widths (written by an older "
                    "embedify); delete it to rebuild the collection.",
                    path=str(self.path),
                )
            ids = [row[0] for row in rows]
            blob = b"".join(row[1] for row in rows)
            dtype = {"float32": "<f4", "int8": "i1", "binary": "i1"}[self.precision]
            matrix = (
                np.frombuffer(blob, dtype=dtype).reshape(len(rows), -1)
                if rows
                else np.zeros((0, 0), np.float32)
            )
            if self.precision == "float32":
                self._norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
                matrix = matrix / np.where(self._norms == 0, 1, self._norms)[:, None]
            self._matrix, self._version = (ids, matrix), version
        return self._matrix
