"""The local provider against sentence-transformers on the same folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from click.testing import CliRunner

import embedify
from embedify.cli import cli
from embedify.testing import ConformanceSuite

TEXTS = [
    "A man is eating food.",
    "The new movie is awesome!",
    "naïve café in 日本語 🙂",
    "short",
    " ".join(["a long passage that runs past the model's limit"] * 60),
]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def reference(folder: Path, texts: list[str], **encode: object) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, convert_to_numpy=True, **encode)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_minilm_equals_sentence_transformers(minilm: Path, backend: str) -> None:
    ours = embedify.get_model(f"local:{minilm}", backend=backend).embed_with_report(TEXTS)
    assert cosine_rows(ours.vectors, reference(minilm, TEXTS)).min() >= 0.99999
    assert ours.report.truncated == [4]  # past max_seq_length=256, reported
    assert ours.report.exact_tokens and ours.report.items[4].tokens == 256


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    bert = tiny_models.bert(root / "bert-hf")
    return {
        "bert-cls-dense": tiny_models.sentence_transformer_folder(
            bert, root / "bert-cls-dense", pooling="cls", dense=16, normalize=True
        ),
        "bert-max": tiny_models.sentence_transformer_folder(bert, root / "bert-max", pooling="max"),
        "t5-mean": tiny_models.sentence_transformer_folder(
            tiny_models.t5(root / "t5-hf"), root / "t5-mean", pooling="mean", normalize=True
        ),
        "xlmr-lasttoken": tiny_models.sentence_transformer_folder(
            tiny_models.xlm_roberta(root / "xlmr-hf"),
            root / "xlmr-lasttoken",
            pooling="lasttoken",
            max_seq_length=16,
        ),
    }


@pytest.mark.parametrize("name", ["bert-cls-dense", "bert-max", "t5-mean", "xlmr-lasttoken"])
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_tiny_architectures_equal_sentence_transformers(
    tiny_folders: dict[str, Path], name: str, backend: str
) -> None:
    folder = tiny_folders[name]
    texts = ["the cat sat on the mat", "what is rain", "dog " * 30, "computer science question"]
    ours = embedify.get_model(f"local:{folder}", backend=backend).embed(texts)
    assert ours.shape == reference(folder, texts).shape
    assert cosine_rows(ours, reference(folder, texts)).min() >= 0.99999


def test_role_prompts_from_the_folder_and_overrides(
    tmp_path: Path, tiny_folders: dict[str, Path]
) -> None:
    bert = tiny_models.bert(tmp_path / "hf")
    folder = tiny_models.sentence_transformer_folder(
        bert, tmp_path / "st", pooling="mean", prompts={"query": "query: ", "passage": "passage: "}
    )
    model = embedify.get_model(f"local:{folder}")
    assert model.info.roles["query"] == "prompt 'query: '"
    assert model.info.roles["document"] == "prompt 'passage: '"
    texts = ["what is rain", "it is raining"]
    assert (
        cosine_rows(
            model.embed(texts, "query"), reference(folder, texts, prompt_name="query")
        ).min()
        >= 0.99999
    )
    custom = embedify.get_model(f"local:{folder}", prompts={"query": "question: "})
    assert custom.info.roles["query"] == "prompt 'question: '"
    assert custom.info.fingerprint() != model.info.fingerprint()


def test_known_family_prompts() -> None:
    import re

    from embedify_huggingface.model import KNOWN_PROMPTS

    def lookup(name: str) -> dict[str, str]:
        return next(t for p, t in KNOWN_PROMPTS if re.search(p, name, re.IGNORECASE))

    assert lookup("BAAI/bge-small-en-v1.5")["query"].startswith("Represent this sentence")
    assert lookup("intfloat/e5-base-v2")["document"] == "passage: "
    assert lookup("nomic-ai/nomic-embed-text-v1.5")["query"] == "search_query: "


def test_onnx_folder_runs_without_torch(minilm: Path, tmp_path: Path) -> None:
    out = tmp_path / "minilm-onnx"
    result = CliRunner().invoke(cli, ["export", "onnx", str(minilm), str(out)])
    assert result.exit_code == 0, result.output
    code = (
        "import sys, embedify; m = embedify.get_model(sys.argv[1]); v = m.embed(['hello world']); "
        "print(v.shape, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out_text = subprocess.run(
        [sys.executable, "-c", code, f"local:{out}"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    ).stdout.strip()
    assert out_text == "(1, 384) False False"
    ref = reference(minilm, ["hello world"])
    ours = embedify.get_model(f"local:{out}").embed(["hello world"])
    assert cosine_rows(ours, ref).min() >= 0.99999


def test_int8_fast_path_stays_close(minilm: Path) -> None:
    texts = [
        f"sentence number {i} about {topic}"
        for i, topic in enumerate(["cats", "finance", "space", "cooking", "music", "sports"] * 3)
    ]
    exact = embedify.get_model(f"local:{minilm}").embed(texts)
    fast = embedify.get_model(f"local:{minilm}", quantize="int8").embed(texts)
    assert cosine_rows(exact, fast).min() > 0.95
    assert not np.array_equal(exact, fast)


def test_pickle_only_folders_are_refused(tmp_path: Path, tiny_folders: dict[str, Path]) -> None:
    import shutil

    folder = shutil.copytree(tiny_folders["bert-max"], tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(embedify.ConfigurationError, match="does not unpickle"):
        embedify.get_model(f"local:{folder}", backend="torch").embed(["x"])


def test_missing_model_offline_is_a_clear_error() -> None:
    with pytest.raises(embedify.ModelNotFoundError, match="local:/path/to/model"):
        embedify.get_model("local:some-org/not-downloaded-model")


class TestLocalConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, minilm: Path):  # type: ignore[no-untyped-def]
        return lambda **options: embedify.get_model(f"local:{minilm}", **options)

    @pytest.fixture
    def error_cases(self, minilm: Path):  # type: ignore[no-untyped-def]
        strict = embedify.get_model(f"local:{minilm}", truncate="error")
        return [
            (lambda: strict.embed(["word " * 300]), embedify.InputTooLongError),
            (lambda: embedify.get_model("local:./no/such/folder"), embedify.ModelNotFoundError),
        ]


def test_concurrent_first_uses_export_once(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    code = (
        "import sys, embedify; "
        "print(embedify.get_model('local:' + sys.argv[1], backend='onnx').embed(['x']).shape)"
    )
    env = {**os.environ, "EMBEDIFY_CACHE_DIR": str(tmp_path / "cache")}
    folder = str(tiny_folders["bert-max"])
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, folder], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=300)[0].strip() for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0] and set(outputs) == {"(1, 32)"}
    exports = [p for p in (tmp_path / "cache" / "onnx").iterdir() if p.is_dir()]
    assert len(exports) == 1 and (exports[0] / "model.onnx").exists()  # no half-written copies
