"""docs/plugins.md's complete test file passes as a user runs it: pytest on the file alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).parents[3] / "docs" / "plugins.md"


def test_the_pages_test_file_passes_under_pytest(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(# test_acme\.py\n.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) == 1, "docs/plugins.md shows one test_acme.py"
    (tmp_path / "test_acme.py").write_text(blocks[0])
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_acme.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    summary = finished.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), summary  # none skipped, none failed
