from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from embedify.cli import cli


def run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_embed_formats(tmp_path: Path) -> None:
    rows = json.loads(run("embed", "-m", "fake:8", "hello", "world"))
    assert [r["text"] for r in rows] == ["hello", "world"] and len(rows[0]["embedding"]) == 8
    csv = run("embed", "-m", "fake:8", "--format", "csv", input="one\ntwo\n")
    assert len(csv.strip().splitlines()) == 2
    target = tmp_path / "out.npy"
    run(
        "embed",
        "-m",
        "fake:8",
        "-o",
        "dimensions=4",
        "--format",
        "npy",
        "--output",
        str(target),
        "x",
    )
    assert np.load(target).shape == (1, 4)


def test_bad_model_is_a_clean_error() -> None:
    result = CliRunner().invoke(cli, ["embed", "-m", "voyage:voyage-3", "x"])
    assert result.exit_code == 1 and "Unknown provider 'voyage'" in result.output
    assert "Traceback" not in result.output


def test_models_plugins_similarity() -> None:
    assert "fake" in run("models")
    assert "embedify.fake" in run("plugins")
    assert float(run("similarity", "-m", "fake", "same text", "same text")) > 0.999


def test_search_reembeds_only_changed_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("# Cats\n\nCats purr and sleep all day.\n")
    (docs / "space.txt").write_text("Rockets reach orbit.\n\nThe moon is far away.\n")
    (docs / "blob.bin").write_bytes(b"\0\1\2")
    runner = CliRunner()
    first = runner.invoke(
        cli,
        ["search", "-m", "fake", "--max-words", "6", str(docs), "purr sleep all day", "-k", "1"],
    )
    assert first.exit_code == 0, first.output
    assert "cats.md:3-3" in first.output and "Cats purr" in first.output
    assert "4 passages (4 embedded now)" in first.output
    again = runner.invoke(
        cli, ["search", "-m", "fake", "--max-words", "6", str(docs), "moon far away", "-k", "1"]
    )
    assert "(0 embedded now)" in again.output and "space.txt:3-3" in again.output
    (docs / "space.txt").write_text("Rockets reach orbit.\n\nMars is red.\n")
    changed = runner.invoke(
        cli,
        ["search", "-m", "fake", "--max-words", "6", "--json", str(docs), "mars red", "-k", "5"],
    )
    hits = json.loads(changed.stdout)
    assert len(hits) == 4 and hits[0]["file"] == "space.txt"
    assert "(1 embedded now)" in changed.stderr


def test_cache_commands(tmp_path: Path) -> None:
    run("embed", "-m", "fake", "--cache", "cached text")
    assert "1 entries" in run("cache", "info")
    assert "removed 1 entries" in run("cache", "clear")


def test_npy_to_stdout() -> None:
    result = CliRunner().invoke(cli, ["embed", "-m", "fake:4", "--format", "npy", "x"])
    assert np.load(io.BytesIO(result.stdout_bytes)).shape == (1, 4)
