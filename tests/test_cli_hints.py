"""What the command line says when a name is wrong or a plugin is missing: the distribution,
an install command that works from a checkout, and close matches."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import embedify
from embedify.cli import cli
from embedify.errors import ConfigurationError, UnknownModelError
from embedify.registry import (
    COMMAND_OWNERS,
    FIRST_PARTY_DISTRIBUTIONS,
    install_hint,
)

ROOT = Path(__file__).resolve().parents[1]


def embedify_alone(*args: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command line with no plugin loaded, as where none is installed (and ``site`` on
    the path, for a plugin of the test's own)."""
    env = {**os.environ, "EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if site:
        env = {**os.environ, "PYTHONPATH": str(site), "EMBEDIFY_PLUGINS": "frobnicator"}
    return subprocess.run(
        [sys.executable, "-m", "embedify", *args], env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("distribution", sorted(set(FIRST_PARTY_DISTRIBUTIONS) - {"embedify"}))
def test_every_install_hint_is_a_command_that_works_from_a_checkout(distribution: str) -> None:
    hint = install_hint(distribution)
    command = hint.rpartition(": ")[2]
    assert command.startswith("pip install ./plugins/") and f"{distribution} (not on" in hint
    project = ROOT / command.removeprefix("pip install ./") / "pyproject.toml"
    assert re.search(rf'^name = "{distribution}"$', project.read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    ("command", "arguments"),
    [(name, ["onnx", "m", "out"] if name == "export" else []) for name in sorted(COMMAND_OWNERS)],
)
def test_a_command_whose_plugin_is_missing_says_how_to_install_it(
    command: str, arguments: list[str]
) -> None:
    result = embedify_alone(command, *arguments)
    distribution = COMMAND_OWNERS[command]
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: 'embedify {command}' comes with {distribution}, which is not installed; "
        + install_hint(distribution)
    ]


def test_a_command_whose_plugin_failed_says_so_instead_of_install_it(tmp_path: Path) -> None:
    (tmp_path / "broken_server.py").write_text(
        "from embedify import hookimpl\n\n"
        "@hookimpl\ndef register_commands(cli):\n    raise RuntimeError('no uvicorn')\n"
    )
    info = tmp_path / "embedify_server-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: embedify-server\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[embedify]\nserver = broken_server\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "EMBEDIFY_PLUGINS": "server"}
    result = subprocess.run(
        [sys.executable, "-m", "embedify", "serve"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: 'embedify serve' comes with embedify-server, which is installed but did not add "
        "it; 'embedify plugins' says why."
    )


def test_unknown_commands_suggest_ours_and_the_plugins(tmp_path: Path) -> None:
    assert "Did you mean 'serve'" in embedify_alone("serv").stderr  # ours, not installed
    assert "Did you mean 'search'" in embedify_alone("serch", "x", "y").stderr
    (tmp_path / "frobnicator.py").write_text(
        "import click\nfrom embedify import hookimpl\n\n"
        "@hookimpl\ndef register_commands(cli):\n"
        "    cli.add_command(click.Command('frobnicate', callback=lambda: None))\n"
    )
    info = tmp_path / "frobnicator-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: frobnicator\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[embedify]\nfrobnicator = frobnicator\n")
    result = embedify_alone("frobnicat", site=tmp_path)
    assert result.returncode == 2 and "Did you mean 'frobnicate'?" in result.stderr


def test_unknown_providers_suggest_installed_and_first_party_names() -> None:
    for name in ("opneai", "opneai:text-embedding-3-small", "coher:embed-v4.0"):
        with pytest.raises(UnknownModelError, match=r"Did you mean '(openai|cohere)'"):
            embedify.get_model(name)
    result = embedify_alone("embed", "-m", "voyag:voyage-3.5", "x")  # ours, not installed
    assert result.returncode == 2 and "Did you mean 'voyage'?" in result.stderr


def test_unknown_options_suggest_the_model_s_options() -> None:
    with pytest.raises(
        ConfigurationError,
        match="dimesions: not an option of this model; did you mean 'dimensions'",
    ):
        embedify.get_model("fake", dimesions=8)
    with pytest.raises(ConfigurationError) as error:
        embedify.get_model("fake", colour="red")  # nothing close: no guess
    assert "did you mean" not in str(error.value)
    result = CliRunner().invoke(cli, ["embed", "-m", "fake", "-o", "batchsize=3", "x"])
    assert (
        result.exit_code == 2
        and "batchsize: not an option of this model; did you mean 'batch_size'?" in result.output
    )


def test_a_plugin_of_ours_that_cannot_load_says_how_to_reinstall_it() -> None:
    from embedify.hookspecs import hookimpl
    from embedify.registry import Registry

    class Cohere:
        @hookimpl
        def register_models(self, register: Any) -> None:
            register("cohere", "embedify_cohere.gone:Model", default_model="v3")

    registry = Registry()
    registry._loaded = True  # only the plugin above, as tests/test_registry.py does
    registry._register_plugin("cohere", Cohere, distribution="embedify-cohere")
    provider, _ = registry.resolve("cohere")
    with pytest.raises(ConfigurationError) as error:
        provider.model_class()
    assert str(error.value).endswith(
        "Reinstall embedify-cohere with its dependencies; " + install_hint("embedify-cohere")
    )


def test_no_hint_in_the_code_installs_our_distributions_from_pypi() -> None:
    """Every ``pip install`` the core and the plugins print names a folder of a checkout for
    our distributions (``embedify-*`` is not on the package index yet); a published name only
    as an aside, never as the command."""
    sources = [*(ROOT / "core" / "embedify").rglob("*.py"), *ROOT.glob("plugins/*/src/**/*.py")]
    command = re.compile(r"""pip install ((?:--?[\w-]+ )*)['"]?(embedify[\w.-]*)""")
    problems = [
        f"{path.relative_to(ROOT)}: pip install {match.group(2)}"
        for path in sources
        for match in command.finditer(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


def test_a_gpu_this_machine_lacks_fails_when_the_model_is_built() -> None:
    torch = pytest.importorskip("torch", reason="device= runs on torch")
    pytest.importorskip("embedify_pack_minilm", reason="the model pack is not installed")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigurationError, match=r"device='cuda' is not available on this"):
        embedify.get_model("local", device="cuda")  # built, never asked to embed
    result = CliRunner().invoke(cli, ["embed", "-m", "local", "-o", "device=cuda", "x"])
    [line] = result.output.strip().splitlines()
    assert result.exit_code == 2 and line.startswith(
        f"Error: device='cuda' is not available on this machine (torch {torch.__version__}"
    )
    assert line.endswith("; use one of: auto, cpu" + (", mps" if has_mps(torch) else ""))


def has_mps(torch: Any) -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
