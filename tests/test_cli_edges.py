"""Edges of the core commands: a terminal on stdin, a read that must not write, a packed
model shown by its name."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedify.cli import cli


def test_embed_with_a_terminal_on_stdin_prints_usage_instead_of_waiting() -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "embedify", "embed", "-m", "fake"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, errors = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # it waited for typing: the bug this test is about
            process.kill()
            process.communicate()
            pytest.fail("embed waited for input on a terminal")
    finally:
        os.close(terminal)
        os.close(controller)
    assert process.returncode == 2
    assert errors.startswith("Usage: ") and "give TEXTS, --file FILE, or pipe lines" in errors


def test_embed_still_reads_lines_piped_in() -> None:
    result = CliRunner().invoke(cli, ["embed", "-m", "fake:4", "--format", "csv"], input="a\nb\n")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cache_info_creates_nothing(isolated_home: Path) -> None:
    missing = isolated_home / "no" / "such" / "cache.sqlite3"
    result = CliRunner().invoke(cli, ["cache", "info", "--path", str(missing)])
    assert result.exit_code == 0 and f"embeddings: {missing}: none yet" in result.stdout
    assert not (isolated_home / "no").exists()
    result = CliRunner().invoke(cli, ["cache", "info"])
    assert result.exit_code == 0 and "none yet" in result.stdout
    assert not (isolated_home / "cache").exists()


def test_cache_info_reads_a_cache_without_changing_it(isolated_home: Path) -> None:
    cache = isolated_home / "mine.sqlite3"
    args = ["embed", "-m", "fake", "-o", f"cache={cache}", "one", "two"]
    # in a subprocess, so that no connection of this process keeps the file open
    subprocess.run([sys.executable, "-m", "embedify", *args], check=True, capture_output=True)
    before = _tree(isolated_home)
    result = CliRunner().invoke(cli, ["cache", "info", "--path", str(cache)])
    assert result.exit_code == 0 and "2 entries" in result.stdout
    assert _tree(isolated_home) == before  # no journal, no shared-memory file, no change


def test_models_names_the_packed_model_and_verbose_adds_its_folder(isolated_home: Path) -> None:
    pytest.importorskip("embedify_pack_minilm", reason="the model pack is not installed")
    from embedify_pack_minilm import model_folder

    listing = CliRunner().invoke(cli, ["models"]).stdout
    assert "alias all-MiniLM-L6-v2 -> local:sentence-transformers/all-MiniLM-L6-v2" in listing
    assert str(model_folder()) not in listing and "site-packages" not in listing
    verbose = CliRunner().invoke(cli, ["models", "--verbose"]).stdout
    assert "\nlocal:sentence-transformers/all-MiniLM-L6-v2\n" in verbose  # the name, not the path
    assert f"    weights: {model_folder()} (embedify-pack-minilm)\n" in verbose
