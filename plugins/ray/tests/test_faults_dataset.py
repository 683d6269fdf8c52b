"""Fault injection for embed-dataset: hostile inputs lose nothing, and Ray never hangs.

Every check that can be made before a part is written is made then: a refused input leaves no
output folder behind. Ray's hang is tested in a subprocess, since a hung Ray job cannot be
interrupted cleanly from inside the process that runs it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embedify_ray.arrow import texts_of
from embedify_ray.dataset import READ_TASK_CPUS, plan_actors
from embedify_ray.files import embed_file, read_parts, scan_input
from embedify_ray.schema import FLOAT_EXACT_INT, SchemaConflictError, schema_of_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedify.errors import ConfigurationError

pytestmark = pytest.mark.faults


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_output(folder: Path) -> pa.Table:
    """Every part as one table: parts whose schemas differ cannot be read back as one."""
    return pa.concat_tables(pq.read_table(part) for part in sorted(folder.glob("part-*.parquet")))


def refused(path: Path, output: Path, **options: Any) -> str:
    """The one-line message embed_file refuses ``path`` with; nothing may be written."""
    with pytest.raises(ConfigurationError) as caught:
        embed_file(path, output, "fake:8", **options)
    message = str(caught.value)
    assert "\n" not in message
    assert not output.exists(), "refused, yet an output folder was written"
    return message


# --- Columns and values are never lost ---------------------------------------------------------


def test_a_column_missing_from_a_parts_first_row_is_kept(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"text": "a"},
        {"text": "b", "late": 1},
        {"text": "c", "nested": {"x": 1}},
        {"text": "d", "nested": {"y": "two"}, "late": None},
        {"text": "e", "tags": []},
        {"text": "f", "tags": ["x"]},
    ]
    source = write_rows(tmp_path / "in.jsonl", rows)
    embed_file(source, tmp_path / "out", "fake:8", part_rows=2)
    out = read_output(tmp_path / "out")
    assert out.column_names == ["text", "late", "nested", "tags", "embedding"]
    assert out.column("late").to_pylist() == [None, 1, None, None, None, None]
    assert out.column("nested").to_pylist() == [
        None,
        None,
        {"x": 1, "y": None},
        {"x": None, "y": "two"},
        None,
        None,
    ]
    assert out.column("tags").to_pylist() == [None, None, None, None, [], ["x"]]


def test_integers_and_floats_across_parts_read_back_as_one_float_column(tmp_path: Path) -> None:
    rows = [{"text": "a", "score": 1}, {"text": "b", "score": 2}, {"text": "c", "score": 2.5}]
    source = write_rows(tmp_path / "in.jsonl", rows)
    embed_file(source, tmp_path / "out", "fake:8", part_rows=2)
    out = read_output(tmp_path / "out")
    assert out.schema.field("score").type == pa.float64()
    assert out.column("score").to_pylist() == [1.0, 2.0, 2.5]


@pytest.mark.parametrize(
    ("second", "named", "types"),
    [
        ({"id": "two"}, "'id'", "string on this line but integer on earlier lines"),
        ({"id": True}, "'id'", "boolean on this line but integer"),
        ({"id": {"n": 2}}, "'id'", "object on this line but integer"),
        ({"id": [2]}, "'id'", "array of integer on this line but integer"),
        ({"id": 2.5, "big": 1.5}, "'big'", "number on this line but integer beyond 2**53"),
    ],
)
def test_type_drift_between_parts_is_refused_before_anything_is_written(
    tmp_path: Path, second: dict[str, Any], named: str, types: str
) -> None:
    rows: list[dict[str, Any]] = [{"text": f"t{i}", "id": i, "big": 2**60} for i in range(4)]
    rows.append({"text": "odd one", **second})
    message = refused(write_rows(tmp_path / "in.jsonl", rows), tmp_path / "out", part_rows=2)
    assert message.startswith(f"{tmp_path / 'in.jsonl'}:5: column {named} holds ")
    assert types in message


def test_drift_inside_nested_values_names_the_place(tmp_path: Path) -> None:
    rows = [{"text": "a", "meta": {"tags": [1, 2]}}, {"text": "b", "meta": {"tags": ["x"]}}]
    message = refused(write_rows(tmp_path / "in.jsonl", rows), tmp_path / "out")
    assert ":2: column 'meta.tags[]' holds string on this line but integer" in message


def test_values_no_parquet_column_can_hold_are_refused(tmp_path: Path) -> None:
    too_big = [{"text": "a", "n": 2**64}]
    assert ":1: column 'n' holds 18446744073709551616, beyond 64-bit" in refused(
        write_rows(tmp_path / "big.jsonl", too_big), tmp_path / "out"
    )
    empty = [{"text": "a", "meta": {}}, {"text": "b", "meta": None}]
    assert "column 'meta' only ever holds empty objects" in refused(
        write_rows(tmp_path / "empty.jsonl", empty), tmp_path / "out"
    )
    surrogate = tmp_path / "surrogate.jsonl"
    surrogate.write_text('{"text": "a", "title": "bad \\ud800 half"}\n')
    assert ":1: column 'title' holds a lone surrogate" in refused(surrogate, tmp_path / "out")


def test_a_key_given_twice_in_one_line_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n{"text": "b", "id": 1, "id": 2}\n')
    assert ":2: key 'id' appears twice" in refused(source, tmp_path / "out")


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    assert ":2: not UTF-8" in refused(source, tmp_path / "out")


def test_an_input_that_changes_while_it_is_read_is_refused(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(4)])
    scan = scan_input(source, "text", "embedding")
    parts = read_parts(scan, 2)
    next(parts)
    with source.open("a") as more:
        more.write(json.dumps({"text": "t4", "new": 1}) + "\n")
    with pytest.raises(ConfigurationError, match="changed while it was read"):
        next(parts)


def test_an_existing_output_column_is_refused_before_writing(tmp_path: Path) -> None:
    rows = [{"text": "a", "embedding": [1.0]}]
    assert "already has a column 'embedding'" in refused(
        write_rows(tmp_path / "in.jsonl", rows), tmp_path / "out"
    )


# --- A text that cannot be embedded is named by its line, before anything is written ----------


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"text": None}, "has a null 'text'"),
        ({"id": 3}, "has no 'text'"),
        ({"text": 7}, "'text' holds integer, not a string"),
        ({"text": "   "}, "'text' is empty or only whitespace"),
    ],
)
def test_a_text_that_cannot_be_embedded_names_its_line_in_the_file(
    tmp_path: Path, row: dict[str, Any], problem: str
) -> None:
    rows: list[dict[str, Any]] = [{"text": f"t{i}"} for i in range(1_500)]
    rows[1_234] = row
    source = write_rows(tmp_path / "in.jsonl", rows)
    message = refused(source, tmp_path / "out", part_rows=1_000)
    assert message.startswith(f"{source}:1235: {problem}")


def test_a_null_text_in_parquet_names_its_row(tmp_path: Path) -> None:
    texts: list[str | None] = [f"t{i}" for i in range(1_500)]
    texts[1_234] = None
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts}), source, row_group_size=500)
    message = refused(source, tmp_path / "out", part_rows=1_000)
    assert message.startswith(f"{source}: row 1235 (counting from 1) has a null 'text'")


def test_a_null_in_a_ray_data_batch_is_not_passed_off_as_a_global_row() -> None:
    batch = pa.table({"text": ["a", None, "c"]})
    with pytest.raises(ConfigurationError) as caught:
        texts_of(batch, "text")
    assert str(caught.value).startswith("a row (row 1 of a batch of 3; Ray Data does not number")
    assert "ds.filter(lambda row: row['text'] is not None)" in str(caught.value)


# --- Property: the schema step refuses a real conflict, or every value reads back --------------

KEYS = st.sampled_from(["a", "b", "c", "text"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=5)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, min_size=1),
    max_leaves=6,
)
ROWS = st.lists(st.dictionaries(KEYS, VALUES, max_size=4), max_size=8)


def kinds(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "wide" if abs(value) > FLOAT_EXACT_INT else "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def kinds_by_place(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """An oracle apart from the merge: every JSON kind seen at each place of the rows."""
    seen: dict[str, set[str]] = {}

    def walk(place: str, value: Any) -> None:
        if value is None:
            return
        seen.setdefault(place, set()).add(kinds(value))
        if isinstance(value, list):
            for item in value:
                walk(f"{place}[]", item)
        elif isinstance(value, dict):
            for key, child in value.items():
                walk(f"{place}.{key}", child)

    for row in rows:
        for key, value in row.items():
            walk(key, value)
    return seen


COMPATIBLE = [{"integer", "number"}, {"integer", "wide"}]


def same(written: Any, read: Any) -> bool:
    """``read`` holds ``written`` exactly; keys a row lacked read back as null."""
    if isinstance(written, dict):
        return isinstance(read, dict) and all(
            same(written.get(key), value) for key, value in read.items()
        )
    if isinstance(written, list):
        return (
            isinstance(read, list)
            and len(read) == len(written)
            and all(same(w, r) for w, r in zip(written, read, strict=True))
        )
    if isinstance(written, bool) or isinstance(read, bool):
        return type(written) is type(read) and written == read
    return bool(written == read)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_the_schema_step_refuses_a_real_conflict_or_keeps_every_value(
    rows: list[dict[str, Any]],
) -> None:
    try:
        schema = schema_of_rows(enumerate(rows, 1), "in.jsonl")
    except SchemaConflictError as conflict:
        found = kinds_by_place(rows[: conflict.line]).get(conflict.path, set())
        assert len(found) > 1 and found not in COMPATIBLE, (conflict, found)
        return
    if not schema.names:  # rows without keys: nothing to write (embed_file needs a text)
        assert not any(rows)
        return
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    read = pq.read_table(io.BytesIO(buffer.getvalue())).to_pylist()
    assert schema.names == list(dict.fromkeys(key for row in rows for key in row))
    assert len(read) == len(rows)
    for written, back in zip(rows, read, strict=True):
        assert set(written) <= set(back)
        assert same(written, back), (written, back)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3), min_size=1))
def test_embed_dataset_writes_every_value_or_refuses_up_front(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("run")
    with_text = [{"text": f"row {i}", **row} for i, row in enumerate(rows)]
    source = write_rows(folder / "in.jsonl", with_text)
    try:
        embed_file(source, folder / "out", "fake:4", part_rows=2)
    except SchemaConflictError as conflict:
        assert conflict.column in {"a", "b", "c"} and not (folder / "out").exists()
        return
    back = read_output(folder / "out").drop_columns(["embedding"]).to_pylist()
    assert [row["text"] for row in back] == [row["text"] for row in with_text]
    for written, read in zip(with_text, back, strict=True):
        assert same(written, read), (written, read)


# --- Ray: the actor pool always leaves a CPU to the dataset's other operators -----------------


@pytest.mark.parametrize("cpus", [0.5, 1.0, 1.5, 2.0, 3.0, 8.0, 64.0])
@pytest.mark.parametrize(("remote", "uses_gpu"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("actors", [None, 1, 4, 20])
def test_the_pool_leaves_a_read_task_its_cpu(
    cpus: float, remote: bool, uses_gpu: bool, actors: int | None
) -> None:
    cluster = {"CPU": cpus, "GPU": 2.0 if uses_gpu else 0.0}
    plan = plan_actors(remote=remote, uses_gpu=uses_gpu, cluster=cluster, options={}, actors=actors)
    assert plan.actors >= 1 and plan.num_cpus >= 0
    assert plan.actors * plan.num_cpus <= max(0.0, cpus - READ_TASK_CPUS) + 1e-9


def test_without_read_tasks_the_pool_may_take_every_cpu() -> None:
    plan = plan_actors(
        remote=False, uses_gpu=False, cluster={"CPU": 2.0}, options={}, reserved_cpus=0.0
    )
    assert (plan.actors, plan.num_cpus) == (2, 1.0)


LAZY_READS = """
import json, sys
import pyarrow as pa, pyarrow.parquet as pq, ray
from embedify_ray import embed_dataset

folder, cpus = sys.argv[1], float(sys.argv[2])
rows = [{"id": i, "text": f"passage {i}"} for i in range(300)]
pq.write_table(pa.Table.from_pylist(rows), f"{folder}/in.parquet")
with open(f"{folder}/in.jsonl", "w") as out:
    out.writelines(json.dumps(row) + "\\n" for row in rows)
ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
ray.data.DataContext.get_current().execution_options.preserve_order = True
result = {}
for name, ds in [
    ("parquet", ray.data.read_parquet(f"{folder}/in.parquet")),
    ("json", ray.data.read_json(f"{folder}/in.jsonl")),
]:
    table = pa.concat_tables(ray.get(embed_dataset(ds, "fake:8").to_arrow_refs()))
    result[name] = [table.column("id").to_pylist(), table.column("embedding").type.list_size]
print("RESULT " + json.dumps(result), flush=True)
"""


@pytest.mark.parametrize("cpus", [2, 1])
def test_a_lazy_read_on_a_small_cluster_finishes(tmp_path: Path, cpus: int) -> None:
    script = tmp_path / "lazy_reads.py"
    script.write_text(textwrap.dedent(LAZY_READS))
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(cpus)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a hung run and the Ray processes it started can be killed
    )
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"embed_dataset over a lazy read hung on a {cpus}-CPU cluster:\n{output}")
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and lines, output
    result: Mapping[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    for name in ("parquet", "json"):
        assert result[name] == [list(range(300)), 8], name


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_input_with_no_rows_says_so_before_writing(tmp_path: Path, content: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    with pytest.raises(ConfigurationError, match=r"in\.jsonl holds no JSON object on any line"):
        embed_file(source, tmp_path / "out", "fake:8")
    assert not (tmp_path / "out").exists()
