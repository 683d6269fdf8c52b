"""The transformer itself: ONNX Runtime or OpenVINO on our ONNX file (no torch import), or
torch + transformers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from embedify_huggingface import graph
from embedify_huggingface.head import Array, Batch

ENCODER_ONLY_T5 = {"t5", "mt5", "umt5"}


def _dtype_argument() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` in 4.56."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("transformers").split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


class OnnxRuntime:
    name = "onnx"

    def __init__(self, onnx_file: Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(onnx_file),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=graph.UNFUSED,
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def token_embeddings(self, batch: Batch) -> Array:
        feed = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        outputs = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})
        result: Array = outputs[0]
        return result


class OpenVinoRuntime:
    """OpenVINO reading the same ONNX file ONNX Runtime runs (no torch, no optimum-intel),
    with its inference precision set to ``bfloat16`` or ``float32``."""

    name = "openvino"

    def __init__(self, onnx_file: Path, precision: str, threads: int | None = None) -> None:
        import openvino

        core = openvino.Core()
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",  # one batch at a time uses every core
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(core.read_model(str(onnx_file)), "CPU", config)
        ran = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        if precision == "bfloat16" and ran != "bf16":
            from embedify.errors import ConfigurationError

            # OpenVINO quietly runs float32 where the CPU cannot do bf16; say so, not mislabel.
            raise ConfigurationError(
                f"OpenVINO runs {ran} here, not bfloat16 (its CPU plugin found no bf16 "
                "instructions); use dtype='float32'"
            )
        self.inputs = {port.get_any_name() for port in self.compiled.inputs}
        self._requests = threading.local()  # an infer request serves one thread at a time

    def token_embeddings(self, batch: Batch) -> Array:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        feed = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        outputs = request.infer({k: v for k, v in feed.items() if k in self.inputs})
        result: Array = np.array(outputs[0], dtype=np.float32)  # a copy: the request reuses it
        return result


def import_torch() -> tuple[Any, Any]:
    """torch and transformers, or an error naming the extra that installs them."""
    try:
        import torch
        import transformers
    except ImportError:
        from embedify.errors import ConfigurationError
        from embedify_huggingface.choice import TORCH_HINT

        raise ConfigurationError(
            "the torch backend (GPU devices, float16, architectures the ONNX graph builder "
            f"does not know) needs: {TORCH_HINT}"
        ) from None
    return torch, transformers


def load_transformer(
    path: Path, *, trust_remote_code: bool, dtype: str = "float32", attention: str | None = None
) -> Any:
    """The folder's transformer as a torch module in eval mode (encoder only for T5).
    ``attention`` is transformers' ``attn_implementation``: its default (SDPA where the model
    supports it) to run, ``"eager"`` to export (the ONNX optimizer fuses eager attention)."""
    torch, transformers = import_torch()

    config = transformers.AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    if config.model_type in ENCODER_ONLY_T5:
        model_class: Any = transformers.T5EncoderModel
        if config.model_type == "mt5":
            model_class = transformers.MT5EncoderModel
    else:
        model_class = transformers.AutoModel
    has_safetensors = any(path.glob("*.safetensors"))
    if not has_safetensors:
        from embedify.errors import ConfigurationError

        raise ConfigurationError(
            f"{path} has no .safetensors weights; embedify does not unpickle .bin files. "
            "Convert the model to safetensors first."
        )
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per model
    model = model_class.from_pretrained(
        str(path),
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        **{_dtype_argument(): getattr(torch, dtype)},
        attn_implementation=attention,
    )
    return model.eval()


class TorchRuntime:
    name = "torch"

    def __init__(
        self, path: Path, *, device: str, dtype: str = "float32", trust_remote_code: bool = False
    ) -> None:
        torch, _ = import_torch()
        self.torch = torch
        self.device = torch.device(device)
        self.model = load_transformer(path, trust_remote_code=trust_remote_code, dtype=dtype)
        self.model.to(self.device)
        forward = self.model.forward.__code__.co_varnames
        self.takes_token_types = "token_type_ids" in forward

    def token_embeddings(self, batch: Batch) -> Array:
        torch = self.torch
        inputs = {
            "input_ids": torch.from_numpy(batch.input_ids).to(self.device),
            "attention_mask": torch.from_numpy(batch.attention_mask).to(self.device),
        }
        if self.takes_token_types:
            inputs["token_type_ids"] = torch.from_numpy(batch.token_type_ids).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state
        result: Array = hidden.float().cpu().numpy()
        return result


def resolve_device(device: str) -> str:
    """The torch device for ``device``, checked now: a GPU that is not there fails when the
    model is built, naming what is, not at the first embed."""
    torch, _ = import_torch()
    from embedify.errors import ConfigurationError

    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    usable = ["auto", "cpu"]
    usable += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    usable += ["mps"] if has_mps else []
    kind, _, index = device.partition(":")
    present = (
        kind == "cpu"
        or (kind == "mps" and has_mps)
        or (
            kind == "cuda"
            and torch.cuda.is_available()
            and int(index or 0) < torch.cuda.device_count()
        )
    )
    if not present:
        build = f"torch {torch.__version__}" + (
            "" if torch.version.cuda else ", built without CUDA"
        )
        raise ConfigurationError(
            f"device={device!r} is not available on this machine ({build}); "
            f"use one of: {', '.join(usable)}"
        )
    return device


__all__ = [
    "OnnxRuntime",
    "OpenVinoRuntime",
    "TorchRuntime",
    "load_transformer",
    "np",
    "resolve_device",
]
