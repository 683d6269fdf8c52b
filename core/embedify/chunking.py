"""Split text files into passages with their line numbers, for ``embedify search``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 2_000_000


@dataclass(frozen=True)
class Passage:
    text: str
    start_line: int  # 1-based, inclusive
    end_line: int


def chunk_text(text: str, max_words: int = 120) -> list[Passage]:
    """Paragraphs (blocks between blank lines) merged up to ``max_words`` words; a longer
    paragraph is cut at line boundaries, and a longer line at word boundaries."""
    passages: list[Passage] = []
    lines: list[tuple[int, str]] = []
    words = 0

    def flush() -> None:
        nonlocal lines, words
        while lines and not lines[-1][1].strip():
            lines.pop()
        body = "\n".join(line for _, line in lines).strip()
        if body:
            passages.append(Passage(body, lines[0][0], lines[-1][0]))
        lines, words = [], 0

    for number, line in enumerate(text.splitlines(), start=1):
        line_words = line.split()
        if not line_words:
            if words >= max_words // 2:
                flush()
            elif lines:
                lines.append((number, line))
            continue
        if len(line_words) > max_words:
            flush()
            while len(line_words) > max_words:
                lines, words = [(number, " ".join(line_words[:max_words]))], max_words
                flush()
                line_words = line_words[max_words:]
            line = " ".join(line_words)
        if words + len(line_words) > max_words:
            flush()
        lines.append((number, line))
        words += len(line_words)
    flush()
    return passages


def text_files(root: Path) -> Iterator[Path]:
    """Readable UTF-8 text files under ``root`` (a file or folder), skipping hidden folders."""
    if root.is_file():
        yield root
        return
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or path.stat().st_size > MAX_FILE_BYTES:
                continue
            head = path.open("rb").read(8192)
            if b"\0" in head:
                continue
            yield path


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
