"""The exit status of every core command, as docs/cli.md's table gives them: 0 done, 1 the work
failed, 2 the command line is wrong, 130 interrupted."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import embedify
from embedify.cli import cli
from embedify.fake import FakeEmbeddingModel


def status(*args: str, input: Any = None) -> int:
    return CliRunner().invoke(cli, list(args), input=input).exit_code


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("Cats purr.\n\nRockets fly.\n")
    return tmp_path


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """A file that is neither a cache nor a collection."""
    path = tmp_path / "damaged.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    return path


class InterruptedModel(FakeEmbeddingModel):
    """Ctrl-C while the model is being built (in the main thread, as a real one arrives)."""

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        raise KeyboardInterrupt


class InterruptedStdin(io.BytesIO):
    """Ctrl-C while ``embed`` waits for lines on stdin (``read(0)`` is click probing it)."""

    def read(self, size: int | None = -1) -> bytes:
        if size == 0:
            return b""
        raise KeyboardInterrupt


def test_done_is_0(folder: Path) -> None:
    assert status("--help") == 0 and status("--version") == 0
    assert status("embed", "-m", "fake", "x") == 0
    assert status("similarity", "-m", "fake", "a", "b") == 0
    assert status("search", "-m", "fake", str(folder), "cats") == 0
    assert status("models") == 0 and status("models", "--json") == 0
    assert status("plugins") == 0
    assert status("cache", "info") == 0 and status("cache", "clear") == 0


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["embed", "--no-such-option", "x"],
        ["embed", "-m", "zebra:stripes", "x"],  # unknown provider
        ["embed", "-m", "fake", "-o", "dimesions=8", "x"],  # unknown option
        ["embed", "-m", "fake", "-o", "novalue", "x"],
        ["similarity", "-m", "fake", "only-one-text"],
        ["search", "-m", "fake", "-k", "0", "{folder}", "cats"],
        ["search", "-m", "fake", "-k", "-1", "{folder}", "cats"],
        ["search", "-m", "fake", "{folder}/missing", "cats"],
        ["models", "--no-such-option"],
        ["plugins", "extra-argument"],
        ["cache", "info", "--no-such-option"],
        ["cache", "clear", "--no-such-option"],
    ],
)
def test_a_wrong_command_line_is_2(args: list[str], folder: Path) -> None:
    assert status(*(arg.replace("{folder}", str(folder)) for arg in args)) == 2


@pytest.mark.parametrize("command", [["models"], ["plugins"], ["embed", "x"]])
def test_a_broken_config_file_is_2(command: list[str], isolated_home: Path) -> None:
    config = isolated_home / "config"
    config.mkdir()
    (config / "config.json").write_text('{"default_model": "fake", "aliasses": {}}')
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2 and "aliasses" in result.output


def test_failed_work_is_1(acme: tuple[Any, Any], folder: Path, damaged: Path) -> None:
    server, _ = acme
    wrong_key = ["-m", "acme", "-o", f"base_url={server.url}", "-o", "api_key=wrong"]
    assert status("embed", *wrong_key, "one") == 1
    assert status("similarity", *wrong_key, "one", "two") == 1
    assert status("search", *wrong_key, str(folder), "cats") == 1
    assert status("search", "-m", "fake", "--index", str(damaged), str(folder), "cats") == 1
    assert status("embed", "-m", "fake", "-o", f"cache={damaged}", "x") == 1
    assert status("cache", "info", "--path", str(damaged)) == 1
    assert status("cache", "clear", "--path", str(damaged)) == 1


def test_ctrl_c_is_130(folder: Path) -> None:
    embedify.register_model("interrupted-test", InterruptedModel, default_model="8")
    result = CliRunner().invoke(cli, ["embed", "-m", "fake"], input=InterruptedStdin())
    assert result.exit_code == 130 and "Interrupted." in result.output
    assert status("similarity", "-m", "interrupted-test", "a", "b") == 130
    assert status("search", "-m", "interrupted-test", str(folder), "cats") == 130
