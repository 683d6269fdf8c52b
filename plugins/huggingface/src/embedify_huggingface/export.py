"""Write an ONNX model folder for a sentence-transformers folder.

The transformer's graph is written straight from its safetensors weights by
:mod:`embedify_huggingface.graph` (no torch) for the families it knows; other architectures
are exported with ``torch.onnx.export`` when the ``[torch]`` extra is installed. The output
folder holds ``model.onnx`` (token embeddings out), the tokenizer and every module
configuration (pooling, Dense weights, Normalize), so it runs with onnxruntime, tokenizers and
numpy alone. ``quantize="int8"`` also writes ``model_int8.onnx``: static int8 quantisation,
calibrated, per output channel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from embedify.config import cache_dir
from embedify.errors import ConfigurationError
from embedify_huggingface import graph
from embedify_huggingface.choice import QUANTIZE_HINT
from embedify_huggingface.folder import ModelFolder, read_folder

#: Architectures whose torch exports ONNX Runtime's transformer optimizer knows how to fuse.
FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert"}
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot"}
Exporter = Literal["auto", "graph", "torch"]


def exporter_for(source: Path, exporter: Exporter = "auto") -> Literal["graph", "torch"]:
    """``graph`` (torch-free builder) for the families it knows, else ``torch`` when installed."""
    if exporter != "auto":
        return exporter
    model_type = graph.read_config(source).get("model_type")
    if graph.supports(model_type):
        return "graph"
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        return "torch"
    raise graph.unknown_architecture(source, model_type)


def export_onnx(
    source: Path, out: Path, *, quantize: str | None = None, exporter: Exporter = "auto"
) -> Path:
    """Write an ONNX model folder for the model folder ``source`` into ``out``."""
    if quantize not in (None, "int8"):
        raise ConfigurationError(f"unknown quantization {quantize!r}; use 'int8'")
    method = exporter_for(source, exporter)
    folder = read_folder(source)
    out.mkdir(parents=True, exist_ok=True)
    for file in source.rglob("*"):
        relative = file.relative_to(source)
        if file.is_dir() or relative.parts[0].startswith("."):
            continue
        is_main_weight = file.suffix in _WEIGHT_SUFFIXES and len(relative.parts) == 1
        if is_main_weight or relative.parts[0] == "onnx" or relative.name.endswith(".index.json"):
            continue
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, out / relative)
    if not (out / "tokenizer.json").exists():
        from embedify_huggingface.head import TextTokenizer

        TextTokenizer(folder).counter.save(str(out / "tokenizer.json"))
    if method == "graph":
        graph.write_onnx(source, out / "model.onnx")
    else:
        _torch_export(folder, out)
    if quantize == "int8":
        quantize_int8(out / "model.onnx", out / "model_int8.onnx", folder)
    return out


def _torch_export(folder: ModelFolder, out: Path) -> None:
    """``torch.onnx.export`` of the transformer, fused where the optimizer knows the family."""
    from embedify_huggingface.head import TextTokenizer
    from embedify_huggingface.runtime import import_torch, load_transformer

    torch, _ = import_torch()

    model = load_transformer(folder.path, trust_remote_code=False, attention="eager")
    tokenizer = TextTokenizer(folder)
    sample = tokenizer.encode(["an example sentence to trace", "another"])
    names = ["input_ids", "attention_mask"]
    takes_token_types = "token_type_ids" in model.forward.__code__.co_varnames
    if takes_token_types:
        names.append("token_type_ids")

    module: Any = torch.nn.Module  # torch comes untyped from import_torch()

    class TokenEmbeddings(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    with warnings.catch_warnings():  # tracing warnings about shapes do not apply here
        warnings.simplefilter("ignore")
        _trace(TokenEmbeddings(), names, sample, out)
    if model.config.model_type in FUSABLE:
        _fuse(out / "model.onnx", model.config)


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


#: Modules whose docstrings calibrate the int8 fast path: real English, offline and stable.
_CALIBRATION_MODULES = ("argparse", "collections", "json", "logging", "pathlib", "re", "typing")


def calibration_texts() -> list[str]:
    """Queries (first lines) and passages (bodies, up to 250 words) from standard-library
    docstrings: the lengths and vocabulary the fast path will see."""
    import importlib
    import inspect

    texts: dict[str, None] = {}
    for name in _CALIBRATION_MODULES:
        module = importlib.import_module(name)
        for _, member in [("", module), *sorted(inspect.getmembers(module))]:
            first, _, body = (inspect.getdoc(member) or "").partition("\n")
            if len(first.split()) >= 4 and len(body.split()) >= 30:
                texts[first.strip()] = None
                texts[" ".join(body.split()[:250])] = None
    return list(texts)[:96]


def quantize_int8(source: Path, target: Path, folder: ModelFolder) -> None:
    """int8 weights (s8, per output channel) on every MatMul, in QDQ form, calibrated on
    :func:`calibration_texts`. In effect weight-only: the fused operators' outputs carry no
    type, so no activation gets a Quantize/Dequantize pair, and ONNX Runtime fuses each weight's
    DequantizeLinear and MatMul into MatMulNBits (8-bit weights, fp32 arithmetic). Measured on
    AVX-512 VNNI: 1.1-1.3x fp32 at top-10 0.955-0.98; real u8s8 kernels (MatMulInteger and
    QAttention, per-tensor activations) ran 2x but fell to 0.84-0.89 (docs/benchmarks.md)."""
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise ConfigurationError(f"the int8 fast path needs: {QUANTIZE_HINT}") from None
    from embedify_huggingface.head import TextTokenizer

    tokenizer = TextTokenizer(folder)
    texts = calibration_texts()
    batches = [tokenizer.encode(texts[i : i + 8]) for i in range(0, len(texts), 8)]

    class Calibration(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.feeds = iter(
                {"input_ids": b.input_ids, "attention_mask": b.attention_mask} for b in batches
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self.feeds, None)

    with _quiet_quantizer():
        quantize_static(
            str(source),
            str(target),
            Calibration(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops lack types
        )


class _FromQuantizer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "quantization" not in Path(record.pathname).parts


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer warns on the root logger about every fused operator it skips (on
    purpose, here) and ONNX Runtime about initializers it drops: dozens of lines that are
    not the user's concern. Both are silenced while it runs."""
    import onnxruntime

    root, quiet = logging.getLogger(), _FromQuantizer()
    root.addFilter(quiet)
    onnxruntime.set_default_logger_severity(3)  # errors only
    try:
        yield
    finally:
        onnxruntime.set_default_logger_severity(2)  # its default: warnings
        root.removeFilter(quiet)


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


def cache_folder(folder: ModelFolder) -> Path:
    """Where :func:`cached_export` keeps the export of ``folder`` (it may not exist yet).
    Raises for an architecture that neither the graph builder nor an installed torch handles."""
    method = exporter_for(folder.path)
    key = f"{folder.revision()}-{graph.GRAPH_FORMAT if method == 'graph' else 'torch-2'}"
    return cache_dir() / "onnx" / key


def cached_export(folder: ModelFolder, quantize: str | None = None, name: str = "") -> Path:
    """The ONNX export of ``folder`` in the user cache, keyed by the folder's content and made
    once (safe when several processes ask at the same time: one builds under a lock, into a
    temporary folder renamed at the end). Says on stderr what it does while it does it."""
    method = exporter_for(folder.path)
    target = cache_folder(folder)
    key = target.name
    wanted = target / ("model_int8.onnx" if quantize == "int8" else "model.onnx")
    if wanted.exists():
        return target
    with _exclusive(cache_dir() / "onnx" / f"{key}.lock"):
        if wanted.exists():
            return target
        label = name or folder.path.name
        started = time.perf_counter()
        if (target / "model.onnx").exists() and quantize == "int8":
            _say(f"quantizing {label} to int8 (once)...")
            quantize_int8(target / "model.onnx", target / ".model_int8.onnx.tmp", folder)
            os.replace(target / ".model_int8.onnx.tmp", wanted)
        else:
            verb = "building ONNX graph" if method == "graph" else "exporting with torch.onnx"
            _say(f"{verb} for {label} (once)...")
            scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
            try:
                export_onnx(folder.path, scratch, quantize=quantize, exporter=method)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(scratch, target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        _say(f"  done in {time.perf_counter() - started:.1f} s, cached in {target}")
    return target


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
