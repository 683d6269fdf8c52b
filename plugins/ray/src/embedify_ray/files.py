"""Embed a Parquet or JSONL file into a folder of Parquet parts: streaming and resumable.

A first pass reads the whole input and decides one schema for every part (a JSONL key that a
part's first rows lack is still a column; types that disagree are refused before anything is
written). The second pass reads ``part_rows`` rows at a time, so a file of any size is never
held in memory at once. Part ``k`` holds input rows ``[k * part_rows, (k + 1) * part_rows)``
with every input column plus the embedding, and is written to a temporary name then renamed,
so a part on disk is always complete: a rerun skips the parts that exist and embeds only the
rest. A manifest records the model's fingerprint and the layout, and a rerun with another model
or input is refused.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from embedify.errors import ConfigurationError, EmbedifyError
from embedify_ray.arrow import add_embeddings, is_text
from embedify_ray.progress import ProgressReporter
from embedify_ray.schema import RowSchema

if TYPE_CHECKING:
    from embedify import EmbeddingModel
    from embedify.bulk import Price
    from embedify.protocol import Role
    from embedify_ray.batching import BatchSummary

MANIFEST = "_embedify.json"
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
#: Fewest rows a part is embedded at a time (see :func:`chunk_rows`).
MIN_CHUNK_ROWS = 1_024


@dataclass
class FileReport:
    """What one ``embed_file`` run did."""

    rows: int
    embedded_rows: int
    skipped_rows: int
    parts: int
    seconds: float
    peak_memory_mb: float
    #: ``via="batch"``: the batch job's numbers and cost.
    batch: BatchSummary | None = None

    def summary(self) -> str:
        rate = f" ({self.embedded_rows / self.seconds:.0f} rows/s)" if self.embedded_rows else ""
        parts = "1 part" if self.parts == 1 else f"{self.parts} parts"
        line = (
            f"{self.rows} rows in {parts}: {self.embedded_rows} embedded, "
            f"{self.skipped_rows} already written; {self.seconds:.1f} s{rate}, "
            f"peak memory {self.peak_memory_mb:.0f} MB"
        )
        return line if self.batch is None else f"{line}\n{self.batch.summary()}"


def part_path(output: Path, index: int) -> Path:
    return output / f"part-{index:06d}.parquet"


@dataclass(frozen=True)
class InputScan:
    """What the first pass over the input found: the one schema every part is written with,
    the row count, and the file's size and mtime, so a change before the last part is seen."""

    path: Path
    schema: pa.Schema
    rows: int
    stamp: tuple[int, int]


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def scan_input(path: Path, column: str, output_column: str) -> InputScan:
    """Read the whole input once and refuse, before anything is written, what would fail or
    lose data later: JSONL rows whose types disagree, texts that cannot be embedded, a clash
    with ``output_column``. Errors name the file and the line (JSONL) or row (Parquet)."""
    stamp = _stamp(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        scan = _scan_parquet(path, column, stamp)
    elif suffix in JSONL_SUFFIXES:
        scan = _scan_jsonl(path, column, stamp)
    else:
        raise ConfigurationError(
            f"{path}: unknown input format {suffix!r}; give a .parquet or a .jsonl file."
        )
    if output_column in scan.schema.names:
        raise ConfigurationError(
            f"the data already has a column {output_column!r}; pick another --output-column."
        )
    return scan


_JSON_KINDS = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}


def _text_problem(text: object, column: str) -> str | None:
    """Why ``text`` is not one the model accepts (the core refuses blank texts too)."""
    if text is None:
        return f"has a null {column!r}"
    if not isinstance(text, str):
        kind = _JSON_KINDS.get(type(text), type(text).__name__)
        return f"{column!r} holds {kind}, not a string"
    if not text.strip():
        return f"{column!r} is empty or only whitespace, which providers reject"
    return None


def _missing_column(column: str, schema: pa.Schema) -> ConfigurationError:
    return ConfigurationError(
        f"no column {column!r} to embed; the data has: {', '.join(schema.names)}. "
        "Pick one with --column (or column=...)."
    )


def _scan_jsonl(path: Path, column: str, stamp: tuple[int, int]) -> InputScan:
    merged = RowSchema(str(path))
    rows, first_problem = 0, None
    for line, row in _jsonl_rows(path):
        problem = None
        if first_problem is None:
            problem = _text_problem(row[column], column) if column in row else f"has no {column!r}"
        if problem is not None:
            first_problem = f"{path}:{line}: {problem}; drop or fix that line before embedding."
            if column in merged.columns:  # else wait: the column may be absent from the file
                raise ConfigurationError(first_problem)
        merged.add(line, row)
        rows += 1
    if rows == 0:
        raise ConfigurationError(f"{path} holds no JSON object on any line: nothing to embed.")
    schema = merged.schema()
    if column not in schema.names:
        raise _missing_column(column, schema)
    if first_problem is not None:
        raise ConfigurationError(first_problem)
    return InputScan(path, schema, rows, stamp)


def _scan_parquet(path: Path, column: str, stamp: tuple[int, int]) -> InputScan:
    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    if column not in schema.names:
        raise _missing_column(column, schema)
    kind = schema.field(column).type
    if not is_text(kind):
        raise ConfigurationError(
            f"column {column!r} holds {kind}, not text; embed a string column."
        )
    row = 0
    for batch in file.iter_batches(columns=[column]):
        for text in batch.column(0).to_pylist():
            row += 1
            problem = _text_problem(text, column)
            if problem is not None:
                raise ConfigurationError(
                    f"{path}: row {row} (counting from 1) {problem}; drop or fix that row "
                    "before embedding."
                )
    return InputScan(path, schema, int(file.metadata.num_rows), stamp)


def read_parts(scan: InputScan, part_rows: int) -> Iterator[pa.Table]:
    """The input as tables of exactly ``part_rows`` rows (the last may be shorter), each with
    the scan's schema. Checked here, so a bad ``part_rows`` fails before anything is written."""
    if part_rows < 1:
        raise ConfigurationError(f"part_rows={part_rows}: a part holds at least one row.")
    if scan.path.suffix.lower() in PARQUET_SUFFIXES:
        return _unchanged(scan, _parquet_parts(scan.path, part_rows))
    return _unchanged(scan, _jsonl_parts(scan, part_rows))


def _unchanged(scan: InputScan, parts: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """``parts``, refusing to go on once the file differs from the one scanned: its rows could
    hold columns or types the scan never saw."""
    for table in parts:
        if _stamp(scan.path) != scan.stamp:
            raise ConfigurationError(
                f"{scan.path} changed while it was read; embed it again into a new output "
                "folder once it is complete."
            )
        yield table


def _parquet_parts(path: Path, part_rows: int) -> Iterator[pa.Table]:
    # pyarrow fills each batch across row-group boundaries, so part k always holds the same
    # rows (what makes a rerun resumable); the tests pin that down.
    for batch in pq.ParquetFile(path).iter_batches(batch_size=part_rows):
        yield pa.Table.from_batches([batch])


def _jsonl_parts(scan: InputScan, part_rows: int) -> Iterator[pa.Table]:
    rows: list[dict[str, Any]] = []
    for _, row in _jsonl_rows(scan.path):
        rows.append(row)
        if len(rows) == part_rows:
            yield pa.Table.from_pylist(rows, schema=scan.schema)
            rows = []
    if rows:
        yield pa.Table.from_pylist(rows, schema=scan.schema)


class _RepeatedKey(Exception):
    """Raised from inside ``json.loads``; :func:`_jsonl_rows` adds the line."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (one of its values would be lost)."""
    row = dict(pairs)
    if len(row) < len(pairs):
        keys = [key for key, _ in pairs]
        raise _RepeatedKey(next(key for key in keys if keys.count(key) > 1))
    return row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; errors name the line."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise ConfigurationError(
                    f"{path}:{number}: not UTF-8 (byte {error.start + 1} of the line); "
                    "re-encode the file as UTF-8."
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as error:
                raise ConfigurationError(f"{path}:{number}: not JSON ({error.msg}).") from None
            except _RepeatedKey as repeated:
                raise ConfigurationError(
                    f"{path}:{number}: key {repeated.args[0]!r} appears twice in one object, "
                    "so one of its values would be lost; keep one."
                ) from None
            if not isinstance(row, dict):
                raise ConfigurationError(
                    f"{path}:{number}: a JSONL line must be an object like "
                    '{"text": "..."}, not ' + type(row).__name__ + "."
                )
            yield number, row


def _manifest(
    path: Path, fingerprint: str, column: str, output_column: str, role: str, part_rows: int
) -> dict[str, Any]:
    stat = path.stat()
    return {
        "model": fingerprint,
        "column": column,
        "output_column": output_column,
        "role": role,
        "part_rows": part_rows,
        "input": {"name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
    }


def _open_output(output: Path, manifest: dict[str, Any]) -> set[int]:
    """Create ``output`` or check that it continues the same job; return the parts done."""
    recorded_path = output / MANIFEST
    if output.exists() and any(output.iterdir()):
        if not recorded_path.exists():
            raise ConfigurationError(
                f"{output} exists and was not written by embed-dataset; give a new output folder."
            )
        recorded = json.loads(recorded_path.read_text())
        if recorded != manifest:
            changed = sorted(key for key in manifest if recorded.get(key) != manifest[key])
            raise ConfigurationError(
                f"{output} holds a run with another {', '.join(changed)}; delete it to start "
                "over, or give a new output folder."
            )
    else:
        output.mkdir(parents=True, exist_ok=True)
        recorded_path.write_text(json.dumps(manifest, indent=2))
    return {
        int(part.stem.removeprefix("part-"))
        for part in output.glob("part-*.parquet")
        if part.stem.removeprefix("part-").isdigit()
    }


def _write_part(output: Path, index: int, table: pa.Table) -> None:
    final = part_path(output, index)
    temporary = final.with_name(f".{final.name}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, final)


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunk_rows(part_rows: int, inputs_per_request: int | None, concurrency: int) -> int:
    """Rows per embedding call: a part is split so that progress moves while it runs, but a
    call holds at least one wave of the requests the model sends at once, so no call leaves the
    model's concurrency idle (a remote model's part then goes in one call)."""
    wave = (inputs_per_request or 1) * concurrency
    return min(part_rows, max(MIN_CHUNK_ROWS, wave))


def embed_file(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: str | EmbeddingModel | None = None,
    *,
    column: str = "text",
    output_column: str = "embedding",
    role: Role = "document",
    part_rows: int = 10_000,
    ray_address: str | None = None,
    actors: int | None = None,
    show_progress: bool = False,
    via: Literal["online", "batch"] = "online",
    poll_interval: float = 60.0,
    price: Price | None = None,
    **options: Any,
) -> FileReport:
    """Embed ``column`` of a Parquet/JSONL file into Parquet parts under ``output``.

    In-process by default, with pyarrow alone; with ``ray_address`` (``"local"`` starts a
    local Ray cluster, else the address of a running one) the parts are embedded by an actor
    pool, one model per actor, and ``model`` must be a name (each actor builds its own).
    ``show_progress`` writes rows, rows/s and time left to stderr while parts run.
    ``via="batch"`` sends the rows through the provider's batch API instead (polled every
    ``poll_interval`` seconds; ``price`` overrides the plugin's, for the report), writing the
    same parts: see :mod:`embedify_ray.batching`.
    """
    from embedify import EmbeddingModel, get_model

    source, target = Path(input_path), Path(output)
    if not source.is_file():
        raise ConfigurationError(f"{source}: no such input file.")
    if via == "batch":
        if ray_address is not None or actors is not None:
            raise ConfigurationError(
                "a batch job runs at the provider: leave out --ray and --actors with --via batch."
            )
        embedder = model if isinstance(model, EmbeddingModel) else get_model(model, **options)
        return _embed_via_batch(
            source, target, embedder, column, output_column, role, part_rows, poll_interval, price
        )
    if via != "online":
        raise ConfigurationError(f"via={via!r}: embed 'online' or through the 'batch' API.")
    if actors is not None and ray_address is None:
        raise ConfigurationError(
            f"actors={actors} sizes the actor pool on Ray: embed on Ray too (--ray, "
            "ray_address='local'), or leave actors out."
        )
    started = time.perf_counter()
    if ray_address is None:
        embedder = model if isinstance(model, EmbeddingModel) else get_model(model, **options)
        probe = embedder
    elif isinstance(model, EmbeddingModel):
        raise ConfigurationError(
            "on Ray, give the model by name (each actor builds its own), e.g. model='local'."
        )
    else:
        from embedify_ray.cluster import connect
        from embedify_ray.dataset import plan_for

        ray = connect(ray_address)
        # The driver reads the input, so no Ray read task needs a CPU beside the actors.
        plan, probe = plan_for(model, options, ray.cluster_resources(), actors, reserved_cpus=0.0)
    info = probe.info
    rows_per_call = chunk_rows(part_rows, info.limits.max_inputs_per_request, info.max_concurrency)
    scan = scan_input(source, column, output_column)  # refuses a bad input before any write
    parts = enumerate(read_parts(scan, part_rows))
    done = _open_output(
        target, _manifest(source, info.fingerprint(), column, output_column, role, part_rows)
    )
    progress = ProgressReporter(scan.rows) if show_progress else None
    skipped = embedded = 0
    try:
        if ray_address is None:
            for index, table in parts:
                if index in done:
                    skipped += table.num_rows
                    if progress:
                        progress.update(skipped=table.num_rows)
                    continue
                pieces = []
                for offset in range(0, table.num_rows, rows_per_call):
                    chunk = table.slice(offset, rows_per_call)
                    first_row = index * part_rows + offset
                    pieces.append(
                        add_embeddings(
                            chunk, embedder, column, output_column, role, first_row=first_row
                        )
                    )
                    if progress:
                        progress.update(embedded=chunk.num_rows)
                _write_part(target, index, pa.concat_tables(pieces))
                embedded += table.num_rows
        else:
            skipped, embedded = _embed_on_ray(
                parts,
                done,
                target,
                plan,
                None if isinstance(model, EmbeddingModel) else model,  # refused above
                column,
                output_column,
                role,
                part_rows,
                rows_per_call,
                progress,
            )
    finally:
        if progress:
            progress.close()
    return FileReport(
        rows=scan.rows,
        embedded_rows=embedded,
        skipped_rows=skipped,
        parts=-(-scan.rows // part_rows),
        seconds=time.perf_counter() - started,
        peak_memory_mb=_peak_memory_mb(),
    )


def _embed_via_batch(
    source: Path,
    target: Path,
    model: EmbeddingModel,
    column: str,
    output_column: str,
    role: Role,
    part_rows: int,
    poll_interval: float,
    price: Price | None,
) -> FileReport:
    from embedify_ray.batching import batch_api_for, embed_in_batches

    started = time.perf_counter()
    api = batch_api_for(model, price)  # a model without one: refused before anything is read
    scan = scan_input(source, column, output_column)
    done = _open_output(
        target, _manifest(source, model.info.fingerprint(), column, output_column, role, part_rows)
    )
    summary = embed_in_batches(
        model,
        api,
        scan,
        target,
        done,
        column=column,
        output_column=output_column,
        role=role,
        part_rows=part_rows,
        poll_interval=poll_interval,
        write_part=lambda index, table: _write_part(target, index, table),
    )
    parts = -(-scan.rows // part_rows)
    skipped = sum(min(part_rows, scan.rows - index * part_rows) for index in done)
    return FileReport(
        rows=scan.rows,
        embedded_rows=scan.rows - skipped,
        skipped_rows=skipped,
        parts=parts,
        seconds=time.perf_counter() - started,
        peak_memory_mb=_peak_memory_mb(),
        batch=summary,
    )


def _embed_on_ray(
    parts: Iterator[tuple[int, pa.Table]],
    done: set[int],
    output: Path,
    plan: Any,
    model: str | None,
    column: str,
    output_column: str,
    role: Role,
    part_rows: int,
    rows_per_call: int,
    progress: ProgressReporter | None,
) -> tuple[int, int]:
    """Feed parts to an actor pool ``rows_per_call`` rows at a time, at most two calls per
    actor in flight, and write each part once all its rows came back: the driver holds a
    bounded number of parts whatever the file's size. Actors get the text column only (as
    ``string`` when it is a ``string_view``, which Ray cannot serialize) and send back the
    embeddings, which the driver adds to the rows it kept."""
    import ray

    from embedify_ray.dataset import BatchEmbedder, keeper_for

    actor_class = ray.remote(num_cpus=plan.num_cpus, num_gpus=plan.num_gpus)(BatchEmbedder)
    keeper = keeper_for(plan)
    pool: list[Any] = [  # actor handles
        actor_class.remote(model, column, output_column, role, plan.options, keeper)
        for _ in range(plan.actors)
    ]
    load = dict.fromkeys(range(len(pool)), 0)
    in_flight: dict[Any, tuple[int, int, int]] = {}  # ref -> (part, piece, actor)
    rows: dict[int, list[pa.Table]] = {}  # part -> its pieces, in order, without embeddings
    pieces: dict[int, list[pa.Table | None]] = {}  # part -> its embedded pieces, in order
    skipped = embedded = 0

    def finish_one() -> None:
        nonlocal embedded
        (ready,), _ = ray.wait(list(in_flight), num_returns=1)
        index, piece, actor = in_flight.pop(ready)
        load[actor] -= 1
        try:
            vectors = ray.get(ready).column(output_column)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            raise (cause if isinstance(cause, EmbedifyError) else error) from None
        chunk = rows[index][piece]
        pieces[index][piece] = chunk.append_column(output_column, vectors)
        if progress:
            progress.update(embedded=chunk.num_rows)
        if all(table is not None for table in pieces[index]):
            whole = pa.concat_tables([table for table in pieces.pop(index) if table is not None])
            del rows[index]
            _write_part(output, index, whole)
            embedded += whole.num_rows

    for index, table in parts:
        if index in done:
            skipped += table.num_rows
            if progress:
                progress.update(skipped=table.num_rows)
            continue
        offsets = range(0, table.num_rows, rows_per_call)
        rows[index] = [table.slice(offset, rows_per_call) for offset in offsets]
        pieces[index] = [None] * len(offsets)
        texts = _serializable_texts(table.select([column]))
        for piece, offset in enumerate(offsets):
            while len(in_flight) >= 2 * len(pool):
                finish_one()
            actor = min(load, key=load.__getitem__)
            load[actor] += 1
            chunk = texts.slice(offset, rows_per_call)
            ref = pool[actor].embed.remote(chunk, index * part_rows + offset)
            in_flight[ref] = (index, piece, actor)
    while in_flight:
        finish_one()
    return skipped, embedded


def _serializable_texts(table: pa.Table) -> pa.Table:
    """``table`` (one text column) with a ``string_view`` column cast to ``string``: Ray's
    serializer does not handle string views."""
    kind = table.schema.field(0).type
    if not pa.types.is_string_view(kind):
        return table
    return table.set_column(0, table.column_names[0], table.column(0).cast(pa.string()))
