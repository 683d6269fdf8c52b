"""``embedify search`` over a folder holding files it cannot use: each is skipped with one
warning line naming it, and the good files are still searched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedify.cli import cli

pytestmark = pytest.mark.faults

GOOD = "the quick brown fox jumps over the lazy dog\n"


def write_bytes_named(folder: Path, name: bytes, data: bytes) -> None:
    """A file whose name need not be UTF-8 (bytes paths pass through to the OS as they are)."""
    descriptor = os.open(os.path.join(os.fsencode(folder), name), os.O_WRONLY | os.O_CREAT, 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def hostile_folder(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text(GOOD)
    write_bytes_named(docs, b"bad\xff.txt", GOOD.encode())  # a name that is not UTF-8
    os.mkdir(os.path.join(os.fsencode(docs), b"folder\xfe"))  # so is this folder's
    write_bytes_named(docs / os.fsdecode(b"folder\xfe"), b"inside.txt", GOOD.encode())
    (docs / "dir.txt").mkdir()  # a folder named like a file: walked, holds nothing
    (docs / "broken.txt").symlink_to(docs / "missing.txt")
    (docs / "binary.txt").write_bytes(b"\0\x01\x02" * 100)
    (docs / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    return docs


def test_search_skips_each_unusable_file_with_one_line_naming_it(tmp_path: Path) -> None:
    docs = hostile_folder(tmp_path)
    result = CliRunner().invoke(cli, ["search", "-m", "fake:8", "--json", str(docs), "fox"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert {hit["file"] for hit in hits} == {"good.txt"}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    expected = {
        "bad\\xff.txt": "file name is not UTF-8",
        "folder\\xfe": "folder name is not UTF-8",
        "broken.txt": "broken link",
        "binary.txt": "binary",
        "latin1.txt": "not UTF-8",
    }
    assert len(warnings) == len(expected), result.stderr
    for name, reason in expected.items():
        (line,) = [w for w in warnings if f"{name}:" in w]
        assert reason in line, line
    assert "skipped 5 files" in result.stderr


def test_search_in_a_real_process_prints_names_it_cannot_decode(tmp_path: Path) -> None:
    """Through a real UTF-8 stderr: printing the skipped name must not fail either."""
    docs = hostile_folder(tmp_path)
    environment = {
        **os.environ,
        "EMBEDIFY_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONIOENCODING": "utf-8",
    }
    result = subprocess.run(
        [sys.executable, "-m", "embedify", "search", "-m", "fake:8", str(docs), "fox"],
        env=environment,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert b"good.txt" in result.stdout
    assert b"bad\\xff.txt" in result.stderr


def test_a_path_given_as_a_non_utf8_file_name_is_one_error_line(tmp_path: Path) -> None:
    write_bytes_named(tmp_path, b"only\xff.txt", GOOD.encode())
    target = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"only\xff.txt"))
    result = CliRunner().invoke(cli, ["search", "-m", "fake:8", target, "fox"])
    assert result.exit_code == 1, result.output
    assert "nothing to search" in result.stderr and "only\\xff.txt" in result.stderr


def test_a_searched_folder_whose_own_name_is_not_utf8_works(tmp_path: Path) -> None:
    root = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"notes\xff"))
    os.mkdir(root)
    Path(root, "good.txt").write_text(GOOD)
    result = CliRunner().invoke(cli, ["search", "-m", "fake:8", "--json", root, "fox"])
    assert result.exit_code == 0, result.output
    assert [hit["file"] for hit in json.loads(result.stdout)] == ["good.txt"]


def test_many_skipped_files_are_named_up_to_a_cap(tmp_path: Path) -> None:
    from embedify.cli import NAMED_SKIPS

    (tmp_path / "good.txt").write_text(GOOD)
    for number in range(NAMED_SKIPS + 5):
        (tmp_path / f"image{number:02}.png").write_bytes(b"\x89PNG\0" * 10)
    result = CliRunner().invoke(cli, ["search", "-m", "fake:8", str(tmp_path), "fox"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == NAMED_SKIPS + 1 and warnings[-1] == "warning: 5 more files skipped"
    assert f"skipped {NAMED_SKIPS + 5} files ({NAMED_SKIPS + 5} binary)" in result.stderr
