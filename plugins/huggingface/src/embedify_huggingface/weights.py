"""Reading safetensors weights into numpy, bf16 included (no torch, no copy until needed).

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
byte offsets) and the raw tensors; a sharded checkpoint adds ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from embedify.errors import ConfigurationError

Array = np.ndarray[Any, Any]

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # widened to float32 below
    "I64": np.int64,
    "I32": np.int32,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(file: Path) -> dict[str, Array]:
    """Every tensor of one ``.safetensors`` file; floating tensors come back as float32."""
    with file.open("rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_length))
    data = np.memmap(file, dtype=np.uint8, mode="r", offset=8 + header_length)
    tensors: dict[str, Array] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _DTYPES:
            raise ConfigurationError(
                f"{file}: tensor {name} has unsupported dtype {entry['dtype']}"
            )
        start, end = entry["data_offsets"]
        raw: Array = np.frombuffer(data[start:end], dtype=_DTYPES[entry["dtype"]])
        if entry["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        elif raw.dtype.kind == "f":
            raw = raw.astype(np.float32, copy=False)
        tensors[name] = raw.reshape(entry["shape"])
    return tensors


def read_weights(folder: Path) -> dict[str, Array]:
    """The transformer's weights in ``folder``: ``model.safetensors`` or its shards."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        tensors: dict[str, Array] = {}
        for shard in shards:
            tensors.update(read_safetensors(folder / shard))
        return tensors
    file = folder / "model.safetensors"
    if not file.exists():
        raise ConfigurationError(
            f"{folder} has no model.safetensors; embedify does not unpickle .bin weights. "
            "Convert the folder to safetensors first."
        )
    return read_safetensors(file)
