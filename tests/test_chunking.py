"""Walking a real folder: whatever it holds, the walk never hangs, crashes or leaves it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest

from embedify.chunking import chunk_text, read_text_files


def build_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with every kind of entry a walk meets, and a folder outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the root\n")
    (root / "a.txt").write_text("plain text\n")
    (root / "sub" / "b.md").write_text("more text\n")
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    (root / "image.png").write_bytes(b"\x89PNG\0\0")
    (root / ".hidden.txt").write_text("hidden\n")
    os.mkfifo(root / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "socket"))
    listener.close()
    (root / "broken").symlink_to(tmp_path / "missing")
    (root / "loop").symlink_to(root / "loop")  # a link to itself
    (root / "sub" / "up").symlink_to(root)  # a folder loop
    (root / "inside-link.txt").symlink_to(root / "a.txt")
    (root / "out").symlink_to(outside)
    locked = root / "locked.txt"
    locked.write_text("no permission\n")
    locked.chmod(0)
    return root, outside


def walk(root: Path, **options: bool) -> tuple[dict[str, str], Counter[str]]:
    """Run the walk in a thread, so a walk that blocks on a FIFO fails instead of hanging."""
    skipped: Counter[str] = Counter()
    found: dict[str, str] = {}

    def target() -> None:
        for path, text in read_text_files(root, skipped=skipped, **options):
            found[str(path.relative_to(root))] = text

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the walk blocked"
    return found, skipped


def test_walk_skips_and_counts_what_is_not_text(tmp_path: Path) -> None:
    root, _ = build_folder(tmp_path)
    found, skipped = walk(root)
    # each real file once, links inside the root included; nothing outside it
    expected = {"a.txt": "plain text\n", "sub/b.md": "more text\n"}
    if os.geteuid() == 0:
        # root reads a chmod 000 file anyway, so it is text here, not "unreadable"
        expected["locked.txt"] = "no permission\n"
    else:
        assert skipped["unreadable"] == 1
    assert found == expected
    assert skipped["not a regular file"] == 2  # the FIFO and the socket
    assert skipped["broken link"] == 2  # the dangling link and the self-loop
    assert skipped["link out of the folder"] == 1
    assert skipped["not UTF-8"] == 1 and skipped["binary"] == 1


def test_follow_links_leaves_the_root_only_when_asked(tmp_path: Path) -> None:
    root, _ = build_folder(tmp_path)
    found, skipped = walk(root, follow_links=True)
    assert found["out/secret.txt"] == "outside the root\n"
    assert "link out of the folder" not in skipped


def test_unreadable_file_is_counted_when_permissions_apply() -> None:
    """As root a chmod 000 file is readable, so the walk runs as an unprivileged user."""
    folder = Path(tempfile.mkdtemp())  # not under pytest's tmp_path, which only root may enter
    try:
        folder.chmod(0o755)
        (folder / "locked.txt").write_text("x\n")
        (folder / "locked.txt").chmod(0)
        (folder / "open.txt").write_text("y\n")
        code = (
            "import collections, pathlib, embedify.chunking as c; s = collections.Counter(); "
            f"print([p.name for p, _ in c.read_text_files(pathlib.Path({str(folder)!r}), "
            "skipped=s)], dict(s))"
        )
        command = [sys.executable, "-c", code]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: cannot drop the privilege to test")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
            probe = subprocess.run([*command[:-1], "import embedify.chunking"], capture_output=True)
            if probe.returncode != 0:
                pytest.skip(
                    "running as root, and user 65534 cannot run this Python or import "
                    "embedify (a private folder on the way), so cannot drop the privilege"
                )
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert output.strip() == "['open.txt'] {'unreadable': 1}"
    finally:
        shutil.rmtree(folder)


def test_a_fifo_given_as_the_root_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    found, skipped = walk(tmp_path / "pipe")
    assert found == {} and skipped == Counter({"not a regular file": 1})


@pytest.mark.parametrize("max_words", [0, -1])
def test_max_words_must_be_positive(max_words: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        chunk_text("some words here", max_words)


def test_chunks_keep_line_numbers() -> None:
    passages = chunk_text("one two\nthree\n\nfour five six seven\n", max_words=3)
    assert [(p.text, p.start_line, p.end_line) for p in passages] == [
        ("one two\nthree", 1, 2),
        ("four five six", 4, 4),
        ("seven", 4, 4),
    ]
