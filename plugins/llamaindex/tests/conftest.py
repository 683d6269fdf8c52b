from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Settings

from embedify.testing.fixtures import offline_session_cache  # noqa: F401

#: Short documents on distinct topics, so the nearest ones to a question are unambiguous.
DOCUMENTS = {
    "cats.txt": "Cats sleep for most of the day and hunt small rodents at night.",
    "dogs.txt": "Dogs were domesticated from wolves and are loyal companions to people.",
    "rain.txt": "Heavy rain fell all week and the river flooded the lower streets.",
    "bread.txt": "Sourdough bread rises slowly because wild yeast ferments the dough.",
    "stocks.txt": "Stock markets fell sharply after the central bank raised interest rates.",
    "planets.txt": "Jupiter is the largest planet in the solar system, a gas giant.",
    "football.txt": "The football team won the championship with a goal in extra time.",
    "python.txt": "Python is a programming language that reads almost like English.",
    "coffee.txt": "Coffee beans are roasted before being ground and brewed with hot water.",
    "volcano.txt": "The volcano erupted and covered the nearby villages with ash.",
}


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """LlamaIndex's Settings are global; each test sets its own embedding."""
    yield
    Settings._embed_model = None


@pytest.fixture(scope="session")
def minilm_folder() -> str:
    from embedify_pack_minilm import model_folder

    return str(model_folder())
