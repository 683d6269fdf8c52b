"""Tokenization and everything after the transformer (pooling, Dense, Normalize), in numpy.

Both runtimes share this code, so torch and ONNX Runtime give the same vectors for the same
token embeddings.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from embedify_huggingface.folder import ModelFolder

Array = np.ndarray[Any, Any]


@dataclass
class Batch:
    input_ids: Array
    attention_mask: Array
    token_type_ids: Array
    pooling_mask: Array  # attention mask without the prompt tokens when the model excludes them
    truncated: list[bool]


class TextTokenizer:
    """The folder's fast tokenizer, set up as sentence-transformers sets it up."""

    def __init__(self, folder: ModelFolder, *, truncate_from_start: bool = False) -> None:
        self.folder = folder
        self.truncate_from_start = truncate_from_start
        self.counter = _load_tokenizer(folder.path)
        self.counter.no_truncation()
        self.counter.no_padding()

    @functools.cached_property
    def tokenizer(self) -> Tokenizer:
        """The padding, truncating copy that makes batches (built when the first batch is:
        a search answered from the cache only counts tokens)."""
        tokenizer = Tokenizer.from_str(self.counter.to_str())
        direction = "left" if self.truncate_from_start else "right"
        tokenizer.enable_truncation(self.folder.max_seq_length, direction=direction)
        config = _tokenizer_config(self.folder.path)
        pad_token = config.get("pad_token") or "[PAD]"
        if isinstance(pad_token, dict):
            pad_token = pad_token.get("content", "[PAD]")
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(pad_id=pad_id or 0, pad_token=pad_token)
        return tokenizer

    def prepare(self, text: str) -> str:
        return text.lower() if self.folder.do_lower_case else text

    def count(self, texts: Sequence[str]) -> list[int]:
        encodings = self.counter.encode_batch([self.prepare(t) for t in texts])
        return [len(encoding.ids) for encoding in encodings]

    def truncate(self, text: str, max_tokens: int, from_start: bool) -> str:
        encoding = self.counter.encode(self.prepare(text), add_special_tokens=False)
        if len(encoding.offsets) <= max_tokens:
            return text
        if from_start:
            return text[encoding.offsets[len(encoding.offsets) - max_tokens][0] :]
        return text[: encoding.offsets[max_tokens - 1][1]]

    def prompt_length(self, prompt: str) -> int:
        """Tokens a prompt adds at the start, as sentence-transformers counts them."""
        return len(self.counter.encode(self.prepare(prompt)).ids) - 1

    def encode(self, texts: Sequence[str], prompt: str = "") -> Batch:
        prepared = [self.prepare(prompt + text) for text in texts]
        encodings: list[Encoding] = self.tokenizer.encode_batch(prepared)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        token_type_ids = np.array([e.type_ids for e in encodings], dtype=np.int64)
        pooling_mask = attention_mask.copy()
        if prompt and not self.folder.include_prompt:
            pooling_mask[:, : self.prompt_length(prompt)] = 0
        truncated = [bool(e.overflowing) for e in encodings]
        return Batch(input_ids, attention_mask, token_type_ids, pooling_mask, truncated)


def _tokenizer_config(path: Path) -> dict[str, Any]:
    file = path / "tokenizer_config.json"
    config: dict[str, Any] = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    special = path / "special_tokens_map.json"
    if "pad_token" not in config and special.exists():
        config["pad_token"] = json.loads(special.read_text(encoding="utf-8")).get("pad_token")
    return config


def _load_tokenizer(path: Path) -> Tokenizer:
    if (path / "tokenizer.json").exists():
        return Tokenizer.from_file(str(path / "tokenizer.json"))
    from transformers import AutoTokenizer  # slow-tokenizer folders: convert once

    return AutoTokenizer.from_pretrained(str(path), use_fast=True).backend_tokenizer


def pool(folder: ModelFolder, token_embeddings: Array, mask: Array) -> Array:
    """Pooling, Dense layers and Normalize, as the folder's modules say."""
    token_embeddings = token_embeddings.astype(np.float32, copy=False)
    weights = mask[:, :, None].astype(np.float32)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    parts = []
    rows = np.arange(len(mask))
    for mode in folder.pooling:
        if mode == "cls":  # the first pooled position (after the prompt when it is excluded)
            parts.append(token_embeddings[rows, mask.argmax(axis=1)])
        elif mode == "max":
            masked = np.where(weights > 0, token_embeddings, -np.inf)
            parts.append(masked.max(axis=1))
        elif mode == "mean":
            parts.append((token_embeddings * weights).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            parts.append((token_embeddings * weights).sum(axis=1) / np.sqrt(counts))
        elif mode == "lasttoken":  # the last pooled position, with right padding
            last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            parts.append(token_embeddings[rows, last] * mask[rows, last][:, None])
    vectors = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    for layer in folder.dense:
        vectors = layer(vectors)
    if folder.normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    result: Array = vectors.astype(np.float32, copy=False)
    return result
