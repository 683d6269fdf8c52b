"""Find the text files under a folder and split them into passages with their line numbers,
for ``embedify search``."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
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


def utf8_name(name: str) -> bool:
    """Whether a file name (as ``os`` decodes it, undecodable bytes as surrogates) is UTF-8
    text: only those can be stored, printed and sent to a model as they are."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_text_files(
    root: Path,
    *,
    follow_links: bool = False,
    skipped: Counter[str] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> Iterator[tuple[Path, str]]:
    """Each UTF-8 text file under ``root`` (a file or folder) with its text, in path order.

    Hidden files and folders are ignored. Whatever else is not a readable UTF-8 text file is
    skipped without blocking, counted in ``skipped`` by reason and passed to ``on_skip`` (the
    path, the reason): FIFOs, sockets and devices are never opened; broken links, unreadable,
    binary, over-large and non-UTF-8 files, and files and folders whose names are not UTF-8,
    are skipped. Links that lead out of ``root`` are followed only with ``follow_links``; each
    real file and folder is visited once, so link loops end.
    """
    counts: Counter[str] = Counter() if skipped is None else skipped

    def skip(path: Path, reason: str) -> None:
        counts[reason] += 1
        if on_skip is not None:
            on_skip(path, reason)

    root = root.resolve()
    if not root.is_dir():
        if not utf8_name(root.name):
            skip(root, "file name is not UTF-8")
            return
        text = _read(root, skip)
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
            skip(folder, "unreadable folder")
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
                skip(path, "broken link")
                continue
            if entry.is_symlink() and not follow_links and not path.resolve().is_relative_to(root):
                skip(path, "link out of the folder")
                continue
            if not utf8_name(entry.name):
                kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
                skip(path, f"{kind} name is not UTF-8")
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            if stat.S_ISDIR(info.st_mode):
                subfolders.append(path)
            elif stat.S_ISREG(info.st_mode):
                files.append(path)
            else:
                skip(path, "not a regular file")
        folders.extend(sorted(subfolders, reverse=True))
        for path in sorted(files):
            text = _read(path, skip)
            if text is not None:
                yield path, text


def _read(path: Path, skip: Callable[[Path, str], None]) -> str | None:
    """The file's text, or None after ``skip`` says why not. Opens without blocking, and reads
    only what ``fstat`` says is a regular file (the path may have changed since it was listed)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        skip(path, "broken link" if isinstance(error, FileNotFoundError) else "unreadable")
        return None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            skip(path, "not a regular file")
            return None
        if info.st_size > MAX_FILE_BYTES:
            skip(path, "too large")
            return None
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError:
            skip(path, "unreadable")
            return None
    if b"\0" in data[:8192]:
        skip(path, "binary")
        return None
    try:
        return data.decode("utf-8-sig")  # a BOM (Windows editors write one) is not text
    except UnicodeDecodeError:
        skip(path, "not UTF-8")
        return None
