"""Find the text files under a folder and split them into passages with their line numbers,
for ``embedify search``."""

from __future__ import annotations

import os
import stat
from collections import Counter
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
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, not {max_words}")
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


def read_text_files(
    root: Path, *, follow_links: bool = False, skipped: Counter[str] | None = None
) -> Iterator[tuple[Path, str]]:
    """Each UTF-8 text file under ``root`` (a file or folder) with its text, in path order.

    Hidden files and folders are ignored. Whatever else is not a readable UTF-8 text file is
    skipped without blocking and counted in ``skipped`` by reason: FIFOs, sockets and devices
    are never opened; broken links, unreadable, binary, over-large and non-UTF-8 files are
    counted. Links that lead out of ``root`` are followed only with ``follow_links``; each real
    file and folder is visited once, so link loops end.
    """
    skipped = Counter() if skipped is None else skipped
    root = root.resolve()
    if not root.is_dir():
        text = _read(root, skipped)
        if text is not None:
            yield root, text
        return
    root_info = root.stat()
    seen = {(root_info.st_dev, root_info.st_ino)}
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            # Real entries before links, so a file reached both ways keeps its own name.
            entries = sorted(os.scandir(folder), key=lambda e: (e.is_symlink(), e.name))
        except OSError:
            skipped["unreadable folder"] += 1
            continue
        files: list[Path] = []
        subfolders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                info = path.stat()  # follows links
            except OSError:  # a broken link, or a loop of links
                skipped["broken link"] += 1
                continue
            if entry.is_symlink() and not follow_links and not path.resolve().is_relative_to(root):
                skipped["link out of the folder"] += 1
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            if stat.S_ISDIR(info.st_mode):
                subfolders.append(path)
            elif stat.S_ISREG(info.st_mode):
                files.append(path)
            else:
                skipped["not a regular file"] += 1
        folders.extend(sorted(subfolders, reverse=True))
        for path in sorted(files):
            text = _read(path, skipped)
            if text is not None:
                yield path, text


def _read(path: Path, skipped: Counter[str]) -> str | None:
    """The file's text, or None after counting why not. Opens without blocking, and reads only
    what ``fstat`` says is a regular file (the path may have changed since it was listed)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        skipped["broken link" if isinstance(error, FileNotFoundError) else "unreadable"] += 1
        return None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            skipped["not a regular file"] += 1
            return None
        if info.st_size > MAX_FILE_BYTES:
            skipped["too large"] += 1
            return None
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError:
            skipped["unreadable"] += 1
            return None
    if b"\0" in data[:8192]:
        skipped["binary"] += 1
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        skipped["not UTF-8"] += 1
        return None
