from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_jsonl(path: Path, rows: int, *, start: int = 0) -> list[str]:
    texts = [f"row {i} is about topic {i % 7} and colour {i % 5}" for i in range(start, rows)]
    with path.open("w") as out:
        for offset, text in enumerate(texts):
            out.write(json.dumps({"id": start + offset, "text": text}) + "\n")
    return texts


@pytest.fixture
def jsonl(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "in.jsonl"
    return path, write_jsonl(path, 2_500)
