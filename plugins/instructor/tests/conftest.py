from __future__ import annotations

import sys
from pathlib import Path

from embedify.testing.fixtures import offline_session_cache  # noqa: F401

# The tiny-model builders live with the local provider's tests; Instructor reuses them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "huggingface" / "tests"))
