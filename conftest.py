"""Fixtures for the Python examples in README.md and docs/, which CI runs with
``pytest --markdown-docs README.md docs`` (pytest-markdown-docs).

Each example runs offline in a fresh folder, with its own config and one embedify cache for the
session (the local model exports to ONNX once). An example that cannot run offline names a
fixture in its fence, in the PyMdown superfences form that mkdocs renders (mkdocs.yml enables
it), e.g. ```` ```{.python fixture:openai_key} ````, and is skipped, with the reason printed,
unless that variable is set.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Pages about an integration run in that integration's own virtualenv (`nox -s plugin-<name>`,
# part of CI); where its package is not installed, their examples are skipped with that reason.
INTEGRATION_PAGES = {
    "chroma.md": ("embedify_chroma", "plugin-chroma"),
    "haystack.md": ("embedify_haystack", "plugin-haystack"),
    "langchain.md": ("embedify_langchain", "plugin-langchain"),
    "llamaindex.md": ("embedify_llamaindex", "plugin-llamaindex"),
    "scale.md": ("embedify_ray", "plugin-ray"),
    "server.md": ("embedify_server", "plugin-server"),
}


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "markdowndocs", False):
        config.option.markdowndocs_syntax = "superfences"  # also reads plain ```python fences


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("markdown-docs") is None:
            continue
        needed = INTEGRATION_PAGES.get(item.path.name)
        if needed and importlib.util.find_spec(needed[0]) is None:
            item.add_marker(
                pytest.mark.skip(reason=f"needs {needed[0]}: runs in `nox -s {needed[1]}`")
            )


@pytest.fixture(scope="session")
def docs_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-cache")


@pytest.fixture(autouse=True)
def _docs_example_environment(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("markdown-docs") is None:
        return  # an ordinary test: nothing to do
    folder: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(request.getfixturevalue("docs_cache")))
    monkeypatch.setenv("EMBEDIFY_CONFIG_DIR", str(folder / "config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMBEDIFY_MODEL", raising=False)
    monkeypatch.chdir(folder)


def _needs(variable: str, why: str = "calls the real service") -> None:
    if not os.environ.get(variable):
        pytest.skip(f"this example {why}: set {variable} to run it")


@pytest.fixture
def openai_key() -> None:
    _needs("OPENAI_API_KEY")


@pytest.fixture
def cohere_key() -> None:
    _needs("CO_API_KEY")


@pytest.fixture
def jina_key() -> None:
    _needs("JINA_API_KEY")


@pytest.fixture
def online() -> None:
    _needs("EMBEDIFY_DOCS_ONLINE", "downloads weights from the Hugging Face hub")
