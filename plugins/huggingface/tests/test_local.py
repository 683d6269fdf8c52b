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


def test_torch_backend_runs_fused_attention(minilm: Path) -> None:
    """SDPA ran bf16 11% faster than eager attention here (the export alone traces eager
    attention, the form ONNX Runtime's optimizer fuses)."""
    model = embedify.get_model(f"local:{minilm}", backend="torch", cache=False)
    assert model.runtime().model.config._attn_implementation == "sdpa"


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    bert = tiny_models.bert(root / "bert-hf")

    def wrap(transformer: Path, name: str, pooling: str, **options: object) -> Path:
        return tiny_models.sentence_transformer_folder(
            transformer, root / name, pooling=pooling, **options
        )

    return {
        "bert-cls-dense": wrap(bert, "bert-cls-dense", "cls", dense=16, normalize=True),
        "bert-max": wrap(bert, "bert-max", "max"),
        "bert-tanh-gelu-mean": wrap(
            tiny_models.bert(root / "bert-tanh-hf", hidden_act="gelu_new"), "bert-tanh", "mean"
        ),
        "roberta-mean": wrap(tiny_models.roberta(root / "roberta-hf"), "roberta-mean", "mean"),
        "xlmr-lasttoken": wrap(
            tiny_models.xlm_roberta(root / "xlmr-hf"),
            "xlmr-lasttoken",
            "lasttoken",
            max_seq_length=16,
        ),
        "distilbert-mean": wrap(
            tiny_models.distilbert(root / "distilbert-hf"), "distilbert-mean", "mean"
        ),
        "mpnet-mean": wrap(
            tiny_models.mpnet(root / "mpnet-hf"), "mpnet-mean", "mean", normalize=True
        ),
        "t5-mean": wrap(tiny_models.t5(root / "t5-hf"), "t5-mean", "mean", normalize=True),
    }


#: Families the graph builder writes without torch; t5 goes through the torch.onnx export.
BUILT = ["bert-cls-dense", "bert-max", "bert-tanh-gelu-mean", "roberta-mean", "xlmr-lasttoken"]
BUILT += ["distilbert-mean", "mpnet-mean"]
TINY_TEXTS = [
    "the cat sat on the mat",
    "what is rain",
    "dog " * 30,
    "computer science question",
    "photosynthesis turns light into chemical energy " * 4,
]


@pytest.mark.parametrize("name", [*BUILT, "t5-mean"])
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_tiny_architectures_equal_sentence_transformers(
    tiny_folders: dict[str, Path], name: str, backend: str
) -> None:
    folder = tiny_folders[name]
    ours = embedify.get_model(f"local:{folder}", backend=backend).embed(TINY_TEXTS)
    theirs = reference(folder, TINY_TEXTS)
    assert ours.shape == theirs.shape
    assert cosine_rows(ours, theirs).min() >= 0.99999
    # Also element by element: tanh-approximated and exact GELU differ only past 1e-4.
    assert np.abs(ours - theirs).max() < 2e-5 * np.abs(theirs).max()


def test_info_says_normalized_only_where_the_folder_has_a_normalize_module(
    tiny_folders: dict[str, Path],
) -> None:
    with_module = embedify.get_model(f"local:{tiny_folders['mpnet-mean']}")
    without = embedify.get_model(f"local:{tiny_folders['bert-max']}")
    assert with_module.info.normalized and not without.info.normalized
    assert not np.allclose(np.linalg.norm(without.embed(TINY_TEXTS), axis=1), 1.0)


@pytest.mark.parametrize("name", BUILT)
def test_built_graph_equals_the_torch_export(
    tiny_folders: dict[str, Path], name: str, tmp_path: Path
) -> None:
    from embedify_huggingface.export import export_onnx

    folder = tiny_folders[name]
    built = export_onnx(folder, tmp_path / "built", exporter="graph")
    exported = export_onnx(folder, tmp_path / "exported", exporter="torch")
    ours = embedify.get_model(f"local:{built}").embed(TINY_TEXTS)
    theirs = embedify.get_model(f"local:{exported}").embed(TINY_TEXTS)
    assert cosine_rows(ours, theirs).min() >= 0.99999


def test_built_graph_uses_the_fused_kernels(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    import onnx
    from embedify_huggingface.export import export_onnx

    out = export_onnx(tiny_folders["mpnet-mean"], tmp_path / "mpnet", exporter="graph")
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"EmbedLayerNormalization", "Attention", "LayerNormalization", "BiasGelu"} <= ops
    assert not {"Softmax", "SkipLayerNormalization", "Erf"} & ops


def test_the_session_keeps_the_residual_layer_norms_unfused(
    tiny_folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime would fuse Add + Add + LayerNormalization back into its slower
    SkipLayerNormalization; the graph the session runs must keep them apart."""
    import onnx
    import onnxruntime
    from embedify_huggingface.export import export_onnx
    from embedify_huggingface.runtime import OnnxRuntime

    out = export_onnx(tiny_folders["bert-max"], tmp_path / "bert", exporter="graph")
    optimized = tmp_path / "optimized.onnx"
    make_options = onnxruntime.SessionOptions

    def saving_options() -> onnxruntime.SessionOptions:
        options = make_options()
        options.optimized_model_filepath = str(optimized)
        return options

    monkeypatch.setattr(onnxruntime, "SessionOptions", saving_options)
    OnnxRuntime(out / "model.onnx")
    ops = [node.op_type for node in onnx.load(str(optimized)).graph.node]
    assert "SkipLayerNormalization" not in ops
    assert ops.count("LayerNormalization") == 2 * 2  # two per layer of the tiny BERT


def test_unknown_architecture_names_the_torch_extra(
    tiny_folders: dict[str, Path], tmp_path: Path
) -> None:
    from embedify_huggingface.export import export_onnx

    with pytest.raises(embedify.ConfigurationError, match=r"embedify-huggingface\[torch\]"):
        export_onnx(tiny_folders["t5-mean"], tmp_path / "t5", exporter="graph")


def test_without_torch_an_unknown_architecture_names_the_extra(
    tiny_folders: dict[str, Path], tmp_path: Path
) -> None:
    code = (  # a process where torch and transformers cannot be imported, as in the light install
        "import sys; sys.modules['torch'] = sys.modules['transformers'] = None; import embedify\n"
        "try: embedify.get_model('local:' + sys.argv[1]).embed(['x'])\n"
        "except embedify.ConfigurationError as error: print(error)"
    )
    env = {**os.environ, "EMBEDIFY_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_folders["t5-mean"])],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert "'t5'" in out and "pip install './plugins/huggingface[torch]'" in out


def test_the_cache_is_keyed_by_content_not_path(
    tiny_folders: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    folder = tiny_folders["bert-max"]
    link = tmp_path / "link"
    link.symlink_to(folder)
    copy = shutil.copytree(folder, tmp_path / "copy")
    original = embedify.get_model(f"local:{folder}")
    assert embedify.get_model(f"local:{link}").info.fingerprint() == original.info.fingerprint()
    assert embedify.get_model(f"local:{copy}").revision == original.revision
    (copy / "config.json").write_text(
        (copy / "config.json").read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"')
    )
    assert embedify.get_model(f"local:{copy}").revision != original.revision


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


_EMBED_IN_A_FRESH_PROCESS = (
    "import sys, embedify; v = embedify.get_model(sys.argv[1]).embed(['hello world']); "
    "heavy = {'torch', 'transformers', 'sentence_transformers', 'onnx'}; "
    "print(v.shape, sorted(heavy & set(sys.modules)))"
)


def _embed_in_a_fresh_process(name: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBEDIFY_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", _EMBED_IN_A_FRESH_PROCESS, name],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )


def test_default_path_never_imports_torch(minilm: Path, tmp_path: Path) -> None:
    first = _embed_in_a_fresh_process(f"local:{minilm}", tmp_path / "cache")
    assert first.stdout.strip() == "(1, 384) []"
    assert "building ONNX graph for" in first.stderr and "(once)" in first.stderr
    later = _embed_in_a_fresh_process(f"local:{minilm}", tmp_path / "cache")
    assert later.stdout.strip() == "(1, 384) []" and "building" not in later.stderr


def test_exported_folder_runs_without_torch(minilm: Path, tmp_path: Path) -> None:
    out = tmp_path / "minilm-onnx"
    result = CliRunner().invoke(cli, ["export", "onnx", str(minilm), str(out)])
    assert result.exit_code == 0, result.output
    later = _embed_in_a_fresh_process(f"local:{out}", tmp_path / "empty-cache")
    assert later.stdout.strip() == "(1, 384) []"
    assert not (tmp_path / "empty-cache" / "onnx").exists()  # ran the folder's own graph
    ref = reference(minilm, ["hello world"])
    ours = embedify.get_model(f"local:{out}").embed(["hello world"])
    assert cosine_rows(ours, ref).min() >= 0.99999


@pytest.mark.parametrize(
    "name", ["local", "all-MiniLM-L6-v2", "local:sentence-transformers/all-MiniLM-L6-v2"]
)
def test_export_accepts_every_local_name(name: str, minilm: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "onnx", name, str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.onnx").exists()
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (
        minilm / "tokenizer.json"
    ).read_bytes()


def test_export_accepts_hub_ids_in_the_cache(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    hub = tmp_path / "hub"
    snapshot = hub / "models--tiny-org--tiny-bert" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_folders["bert-max"], snapshot)
    (hub / "models--tiny-org--tiny-bert" / "refs").mkdir()
    (hub / "models--tiny-org--tiny-bert" / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    command = ["export", "onnx", "tiny-org/tiny-bert", str(tmp_path / "o")]
    subprocess.run([sys.executable, "-m", "embedify", *command], env=env, check=True)
    assert (tmp_path / "o" / "model.onnx").exists()


def test_export_refuses_remote_models(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "onnx", "fake:8", str(tmp_path / "out")])
    assert result.exit_code != 0 and "only local models export" in result.output


def test_int8_fast_path_stays_close_and_quantizes_quietly(
    minilm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path))  # quantize here, not from a cache
    texts = [
        f"sentence number {i} about {topic}"
        for i, topic in enumerate(["cats", "finance", "space", "cooking", "music", "sports"] * 3)
    ]
    exact = embedify.get_model(f"local:{minilm}").embed(texts)
    fast = embedify.get_model(f"local:{minilm}", quantize="int8").embed(texts)
    assert cosine_rows(exact, fast).min() > 0.995  # calibrated; dynamic ranges gave 0.989
    assert not np.array_equal(exact, fast)
    shown = capfd.readouterr().err
    assert "to int8 (once)" in shown  # what the user is told...
    assert "failed to infer" not in shown and "Removing initializer" not in shown  # ...and not


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
