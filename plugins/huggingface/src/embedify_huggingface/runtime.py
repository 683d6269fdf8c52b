"""The transformer itself: ONNX Runtime (no torch import) or torch + transformers."""

from __future__ import annotations

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


def import_torch() -> tuple[Any, Any]:
    """torch and transformers, or an error naming the extra that installs them."""
    try:
        import torch
        import transformers
    except ImportError:
        from embedify.errors import ConfigurationError

        raise ConfigurationError(
            "the torch backend (GPU devices, 16-bit dtypes, architectures the ONNX graph builder "
            "does not know) needs: pip install 'embedify-huggingface[torch]'"
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
    if device != "auto":
        return device
    torch, _ = import_torch()

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


__all__ = ["OnnxRuntime", "TorchRuntime", "load_transformer", "np", "resolve_device"]
