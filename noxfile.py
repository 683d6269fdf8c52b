"""Developer sessions. `nox -l` lists them; `nox -s plugin-huggingface` runs one."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
TORCH = "torch==2.13.0"  # the CPU build; install before anything that depends on torch
PLUGINS = sorted(p.name for p in Path("plugins").iterdir() if (p / "pyproject.toml").exists())
# Plugins a plugin's tests need beside it (a model pack needs its provider).
PLUGIN_NEEDS = {
    "pack-minilm": ["plugins/huggingface"],
    "azure-openai": ["plugins/openai"],
    "tei": ["plugins/openai"],  # its tests show the OpenAI-compatible route
    "instructor": ["plugins/huggingface[test]"],  # tiny-model builders, sentence-transformers
    # round trips: the local model served, read back through the openai: and tei: providers
    "server": ["plugins/huggingface", "plugins/pack-minilm", "plugins/openai", "plugins/tei"],
}


@nox.session
def tests(session: nox.Session) -> None:
    """Core tests, with the example plugin they drive the engine through."""
    session.install("-e", ".", "-e", "examples/embedify-acme", "pytest", "pytest-asyncio")
    session.run("pytest", "tests", "examples", *session.posargs)


@nox.session
@nox.parametrize("plugin", PLUGINS)
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin's tests in a virtualenv holding only that plugin and the core."""
    if plugin in ("huggingface", "pack-minilm", "instructor", "server"):
        session.install(TORCH)
    session.install(
        "-e", ".", *[arg for need in PLUGIN_NEEDS.get(plugin, []) for arg in ("-e", need)]
    )
    session.install(
        "-e",
        f"plugins/{plugin}[test]" if plugin in ("huggingface", "server") else f"plugins/{plugin}",
    )
    session.install("pytest", "pytest-asyncio")
    session.run("pytest", f"plugins/{plugin}/tests", *session.posargs)
    if plugin == "server":  # the page's Python examples run against the plugin
        session.run("pytest", "--markdown-docs", "docs/server.md")


@nox.session(name="instructor-reference")
def instructor_reference(session: nox.Session) -> None:
    """Instructor vs the original InstructorEmbedding, on the only stack it works with."""
    session.install(TORCH)
    session.install(
        "InstructorEmbedding==1.0.1",
        "transformers==4.46.3",
        "huggingface_hub<0.26",
        "tokenizers<0.21",
        "sentencepiece",
        "scikit-learn",
        "scipy",
        "nltk",
        "tqdm",
        "pytest",
        "pluggy",
        "pydantic",
        "numpy",
        "click",
        "onnxruntime",
        "onnx",
        "safetensors",
    )
    # sentence-transformers 2.2.2 asks for torchvision, whose PyPI build breaks the T5 import.
    session.install("--no-deps", "sentence-transformers==2.2.2")
    session.install("--no-deps", "-e", ".", "-e", "plugins/huggingface", "-e", "plugins/instructor")
    session.run("pytest", "plugins/instructor/reference/test_reference.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "core", "tests", "examples", "plugins", "bench", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "core", "tests", "examples", "plugins", "bench", "noxfile.py"
    )


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the core."""
    session.install("-e", ".", "mypy", "types-tqdm", "pytest")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("mkdocs")
    session.run("mkdocs", "build", "--strict")
