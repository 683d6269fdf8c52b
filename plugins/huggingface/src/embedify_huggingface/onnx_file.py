"""Just enough of the ONNX file format (protocol buffers, onnx.proto) to write a graph.

The ``onnx`` package would cost the light install ~35 MB for the few messages a graph of
initializers and nodes needs: models, graphs, nodes with int/float/ints attributes, tensors
(raw bytes, or external data for models past protobuf's 2 GB limit) and typed inputs/outputs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
FLOAT, UINT8, INT8, INT32, INT64 = 1, 2, 3, 6, 7  # TensorProto.DataType
_ELEMENT_TYPES = {
    np.dtype(np.float32): FLOAT,
    np.dtype(np.uint8): UINT8,  # u8/s8: the int8 MatMul peak in bench/local_bench.py
    np.dtype(np.int8): INT8,
    np.dtype(np.int32): INT32,
    np.dtype(np.int64): INT64,
}
_VARINT, _FIXED32, _BYTES = 0, 5, 2


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s as ten bytes of two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(field, _BYTES) + _varint(len(data)) + data


def _messages(field: int, messages: Iterable[bytes]) -> bytes:
    return b"".join(_bytes(field, message) for message in messages)


def _attribute(name: str, value: int | float | Sequence[int]) -> bytes:
    # AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
    if isinstance(value, float):
        return _bytes(1, name) + _key(2, _FIXED32) + struct.pack("<f", value) + _int(20, 1)
    if isinstance(value, int):
        return _bytes(1, name) + _int(3, value) + _int(20, 2)
    return _bytes(1, name) + b"".join(_int(8, v) for v in value) + _int(20, 7)


def node(
    op_type: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    name: str,
    domain: str = "",
    **attributes: int | float | Sequence[int],
) -> bytes:
    """A NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7."""
    return (
        b"".join(_bytes(1, i) for i in inputs)
        + b"".join(_bytes(2, o) for o in outputs)
        + _bytes(3, name)
        + _bytes(4, op_type)
        + _messages(5, (_attribute(k, v) for k, v in sorted(attributes.items())))
        + (_bytes(7, domain) if domain else b"")
    )


def tensor(name: str, array: Array, external: tuple[str, int] | None = None) -> bytes:
    """A TensorProto (dims 1, data_type 2, name 8, raw_data 9); with ``external=(file,
    offset)`` the bytes live in that file (external_data 13, data_location 14 = EXTERNAL)."""
    header = b"".join(_int(1, d) for d in array.shape)
    header += _int(2, _ELEMENT_TYPES[array.dtype]) + _bytes(8, name)
    if external is None:
        return header + _bytes(9, np.ascontiguousarray(array).tobytes())
    location, offset = external
    entries = [("location", location), ("offset", str(offset)), ("length", str(array.nbytes))]
    return (
        header
        + _messages(13, (_bytes(1, key) + _bytes(2, value) for key, value in entries))
        + _int(14, 1)
    )


def value_info(name: str, element_type: int, dims: Sequence[int | str]) -> bytes:
    """A ValueInfoProto with a tensor type; string dims are symbolic (``batch``)."""
    shape = _messages(
        1, (_int(1, d) if isinstance(d, int) else _bytes(2, d) for d in dims)
    )  # TensorShapeProto.dim: dim_value 1 | dim_param 2
    tensor_type = _int(1, element_type) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def save_model(
    target: Path,
    *,
    graph_name: str,
    nodes: Sequence[bytes],
    initializers: Sequence[tuple[str, Array]],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    opsets: dict[str, int],
    producer: str,
    ir_version: int = 8,
    external_above: int = 1_800_000_000,
) -> None:
    """Write a ModelProto; weights go to ``<target>.data`` when they pass ``external_above``
    bytes (protobuf messages stop at 2 GB)."""
    external = sum(array.nbytes for _, array in initializers) > external_above
    tensors = []
    if external:
        data_file = target.with_name(f"{target.name}.data")
        with data_file.open("wb") as handle:
            for name, array in initializers:
                offset = handle.tell()
                handle.write(np.ascontiguousarray(array).tobytes())
                tensors.append(tensor(name, array, (data_file.name, offset)))
    else:
        tensors = [tensor(name, array) for name, array in initializers]
    # GraphProto: node 1, name 2, initializer 5, input 11, output 12
    graph = (
        _messages(1, nodes)
        + _bytes(2, graph_name)
        + _messages(5, tensors)
        + _messages(11, inputs)
        + _messages(12, outputs)
    )
    # ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (domain 1, version 2)
    opset_messages = (_bytes(1, domain) + _int(2, version) for domain, version in opsets.items())
    model = _int(1, ir_version) + _bytes(2, producer) + _bytes(7, graph)
    model += _messages(8, opset_messages)
    target.write_bytes(model)
