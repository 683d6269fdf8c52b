"""The chosen runtime for real: OpenVINO on our ONNX file, the precision in the fingerprint,
export folders that run what was exported, and options that fail when the model is built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from click.testing import CliRunner
from embedify_huggingface.choice import BF16_FLAGS, cpu_flags

import embedify
from embedify.cli import cli
from embedify.collection import Collection, ModelMismatchError

TEXTS = [
    "A man is eating food.",
    "The quarterly revenue grew by twelve percent.",
    "naïve café in 日本語 🙂",
    " ".join(["a long passage that runs past the model's limit"] * 60),
    "short",
]
HAS_BF16 = any(flag in cpu_flags() for flag in BF16_FLAGS)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    return tiny_models.sentence_transformer_folder(
        tiny_models.bert(root / "hf"), root / "st", pooling="mean", normalize=True
    )


def test_openvino_float32_equals_onnx_runtime(minilm: Path) -> None:
    exact = embedify.get_model(f"local:{minilm}", backend="onnx", cache=False)
    openvino = embedify.get_model(
        f"local:{minilm}", backend="openvino", dtype="float32", cache=False
    )
    assert openvino.runtime_choice.runtime == "openvino"
    assert type(openvino.runtime()).__name__ == "OpenVinoRuntime"
    assert cosine_rows(openvino.embed(TEXTS), exact.embed(TEXTS)).min() >= 0.9999
    assert openvino.info.fingerprint() == exact.info.fingerprint()  # both exact float32


@pytest.mark.skipif(not HAS_BF16, reason="OpenVINO runs bfloat16 only with AMX or AVX512-BF16")
def test_openvino_bfloat16_stays_close(minilm: Path) -> None:
    exact = embedify.get_model(f"local:{minilm}", dtype="float32", cache=False)
    fast = embedify.get_model(f"local:{minilm}", cache=False)
    assert (fast.runtime_choice.runtime, fast.info.compute) == ("openvino", "bfloat16")
    assert cosine_rows(fast.embed(TEXTS), exact.embed(TEXTS)).min() >= 0.9999


@pytest.mark.skipif(HAS_BF16, reason="this CPU runs bfloat16")
def test_openvino_is_not_allowed_to_run_float32_labelled_bfloat16(minilm: Path) -> None:
    """On a CPU without bf16 OpenVINO quietly compiles float32 for a bf16 hint: the runtime
    refuses rather than store float32 vectors under a bfloat16 fingerprint."""
    from embedify_huggingface.runtime import OpenVinoRuntime

    onnx_file = embedify.get_model(f"local:{minilm}", backend="onnx")._onnx_file(int8=False)
    with pytest.raises(embedify.ConfigurationError, match="not bfloat16"):
        OpenVinoRuntime(onnx_file, "bfloat16")


def test_a_cache_or_collection_of_one_precision_refuses_the_other(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path / "cache"))
    exact = embedify.get_model(f"local:{tiny}", dtype="float32", cache=True)
    int8 = embedify.get_model(f"local:{tiny}", quantize="int8", cache=True)
    bf16 = embedify.get_model(f"local:{tiny}", backend="torch", dtype="bfloat16", cache=True)
    assert (exact.info.compute, int8.info.compute, bf16.info.compute) == (None, "int8", "bfloat16")
    fingerprints = {m.info.fingerprint() for m in (exact, int8, bf16)}
    assert len(fingerprints) == 3
    texts = ["the cat sat on the mat", "what is rain", "computer science question"]
    assert exact.embed_with_report(texts).report.cached == 0
    assert exact.embed_with_report(texts).report.cached == 3  # the cache works...
    assert int8.embed_with_report(texts).report.cached == 0  # ...but not across precisions
    assert bf16.embed_with_report(texts).report.cached == 0
    Collection(tmp_path / "docs.db", exact).upsert(ids=["a", "b"], texts=texts[:2])
    with pytest.raises(ModelMismatchError):
        Collection(tmp_path / "docs.db", int8)
    with pytest.raises(ModelMismatchError):
        Collection(tmp_path / "docs.db", bf16)


def test_an_int8_export_runs_its_int8_file(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny-int8"
    result = CliRunner().invoke(cli, ["export", "onnx", str(tiny), str(out), "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    assert "model_int8.onnx" in result.output and "dtype='float32'" in result.output
    exported = embedify.get_model(f"local:{out}", cache=False)
    assert exported.runtime_choice.precision == "int8" and exported.info.compute == "int8"
    exact = embedify.get_model(f"local:{out}", dtype="float32", cache=False)
    assert exact.runtime_choice.precision == "float32"
    texts = ["the cat sat on the mat", "photosynthesis turns light into chemical energy"]
    source_int8 = embedify.get_model(f"local:{tiny}", quantize="int8", cache=False).embed(texts)
    source_exact = embedify.get_model(f"local:{tiny}", backend="onnx", cache=False).embed(texts)
    assert np.allclose(exported.embed(texts), source_int8, atol=1e-6)
    assert not np.allclose(exported.embed(texts), source_exact, atol=1e-6)
    assert np.allclose(exact.embed(texts), source_exact, atol=1e-5)


def test_an_absent_gpu_fails_when_the_model_is_built(tiny: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(embedify.ConfigurationError, match=r"device='cuda'.*use one of: auto, cpu"):
        embedify.get_model(f"local:{tiny}", device="cuda")
    with pytest.raises(embedify.ConfigurationError, match="'cpu', 'cuda'"):
        embedify.get_model(f"local:{tiny}", device="gpu")


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )


def test_int8_without_its_quantizer_fails_when_the_model_is_built(
    tiny: Path, tmp_path: Path
) -> None:
    code = (  # a light install: no onnx package, nothing quantized in the cache yet
        "import sys; sys.modules['onnx'] = None; import embedify\n"
        "try: embedify.get_model('local:' + sys.argv[1], quantize='int8')\n"
        "except embedify.ConfigurationError as error: print(error)"
    )
    out = _run(code, str(tiny), EMBEDIFY_CACHE_DIR=str(tmp_path / "cache")).stdout
    assert "needs the onnx package" in out and "plugins/huggingface[quantize]" in out


def test_the_default_path_imports_no_torch_and_says_what_it_chose(
    minilm: Path, tmp_path: Path
) -> None:
    code = (
        "import sys, embedify; m = embedify.get_model('local:' + sys.argv[1]); m.embed(['x']); "
        "print(m.runtime_choice.runtime, m.runtime_choice.precision, m.info.compute); "
        "print(sorted({'torch', 'transformers', 'optimum', 'onnx'} & set(sys.modules)))"
    )
    result = _run(code, str(minilm), EMBEDIFY_CACHE_DIR=str(tmp_path / "cache"))
    chosen, heavy = result.stdout.strip().splitlines()
    assert heavy == "[]", result.stderr
    expected = "openvino bfloat16 bfloat16" if HAS_BF16 else "openvino float32 None"
    assert chosen == expected


def test_prompts_for_a_misspelt_role_fail_when_the_model_is_built(tiny: Path) -> None:
    with pytest.raises(embedify.ConfigurationError, match=r"unknown roles \['querry'\]"):
        embedify.get_model(f"local:{tiny}", prompts={"querry": "query: "})


def test_models_verbose_shows_the_weights_folder_and_the_runtime_chosen(
    minilm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDIFY_MODEL", f"local:{minilm}")
    result = CliRunner().invoke(cli, ["models", "--verbose"])
    assert result.exit_code == 0, result.output
    model = embedify.get_model(f"local:{minilm}")
    assert f"    weights: {minilm.resolve()} (folder)" in result.output
    assert f"    runtime: {model.runtime_choice}" in result.output
