"""Export a sentence-transformers folder to an ONNX model folder (``torch.onnx.export``).

The output folder holds ``model.onnx`` (the transformer, token embeddings out), the tokenizer
and every module configuration (pooling, Dense weights, Normalize), so it runs with
onnxruntime, tokenizers and numpy alone. ``quantize="int8"`` also writes ``model_int8.onnx``:
dynamic int8 quantisation per output channel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedify.config import cache_dir
from embedify_huggingface.folder import ModelFolder, read_folder

EXPORT_FORMAT = "2"
#: Architectures whose graphs ONNX Runtime's transformer optimizer knows how to fuse.
FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert"}
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot"}


def export_onnx(source: Path, out: Path, *, quantize: str | None = None) -> Path:
    """Write an ONNX model folder for the model folder ``source`` into ``out``."""
    import torch

    from embedify_huggingface.head import TextTokenizer
    from embedify_huggingface.runtime import load_transformer

    folder = read_folder(source)
    out.mkdir(parents=True, exist_ok=True)
    for file in source.rglob("*"):
        relative = file.relative_to(source)
        if file.is_dir() or relative.parts[0].startswith("."):
            continue
        is_main_weight = file.suffix in _WEIGHT_SUFFIXES and len(relative.parts) == 1
        if is_main_weight or relative.parts[0] == "onnx":
            continue
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, out / relative)
    if not (out / "tokenizer.json").exists():
        TextTokenizer(folder).counter.save(str(out / "tokenizer.json"))

    model = load_transformer(source, trust_remote_code=False)
    tokenizer = TextTokenizer(folder)
    sample = tokenizer.encode(["an example sentence to trace", "another"])
    names = ["input_ids", "attention_mask"]
    takes_token_types = "token_type_ids" in model.forward.__code__.co_varnames
    if takes_token_types:
        names.append("token_type_ids")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.model(**dict(zip(names, inputs))).last_hidden_state
            return hidden

    with warnings.catch_warnings():  # tracing warnings about shapes do not apply here
        warnings.simplefilter("ignore")
        _trace(TokenEmbeddings(), names, sample, out)
    if model.config.model_type in FUSABLE:
        _fuse(out / "model.onnx", model.config)
    if quantize == "int8":
        quantize_int8(out / "model.onnx", out / "model_int8.onnx")
    elif quantize is not None:
        raise ValueError(f"unknown quantization {quantize!r}; use 'int8'")
    return out


def _trace(module: Any, names: list[str], sample: Any, out: Path) -> None:
    import torch

    arrays = {
        "input_ids": sample.input_ids,
        "attention_mask": sample.attention_mask,
        "token_type_ids": sample.token_type_ids,
    }
    torch.onnx.export(
        module,
        tuple(torch.from_numpy(arrays[name]) for name in names),
        str(out / "model.onnx"),
        input_names=names,
        output_names=["token_embeddings"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "token_embeddings"]},
        opset_version=17,
        dynamo=False,
    )


def _fuse(path: Path, config: Any) -> None:
    """Fuse attention, LayerNorm and GELU into ONNX Runtime's kernels (same math, faster)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(path),
        model_type="distilbert" if config.model_type == "distilbert" else "bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=0,
    )
    optimized.save_model_to_file(str(path))


def quantize_int8(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops lack types
    )


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: the atomic rename below still keeps exports whole
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_export(folder: ModelFolder, quantize: str | None = None) -> Path:
    """The ONNX export of ``folder`` in the user cache, made once (safe when several processes
    ask at the same time: one exports under a lock, into a temporary folder renamed at the end)."""
    key = f"{folder.revision()}-{EXPORT_FORMAT}"
    target = cache_dir() / "onnx" / key
    wanted = target / ("model_int8.onnx" if quantize == "int8" else "model.onnx")
    if wanted.exists():
        return target
    with _exclusive(cache_dir() / "onnx" / f"{key}.lock"):
        if wanted.exists():
            return target
        if (target / "model.onnx").exists() and quantize == "int8":
            quantize_int8(target / "model.onnx", target / ".model_int8.onnx.tmp")
            os.replace(target / ".model_int8.onnx.tmp", wanted)
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        try:
            export_onnx(folder.path, scratch, quantize=quantize)
            if target.exists():
                shutil.rmtree(target)
            os.replace(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target
