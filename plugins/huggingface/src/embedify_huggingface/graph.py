"""ONNX graphs written straight from safetensors weights, without torch.

The encoder families behind most embedding models (BERT: all-MiniLM, BGE, E5, GTE;
RoBERTa / XLM-RoBERTa / CamemBERT; MPNet; DistilBERT) are one computation with different
weight names. Each family's ``config.json`` and weights are read into one description,
:class:`Encoder`; :func:`save_onnx` writes it as a graph of ONNX Runtime's fused CPU kernels
(``com.microsoft`` EmbedLayerNormalization, Attention, BiasGelu or FastGelu), the graph its
transformer optimizer makes of a torch export, without the export. The residual connections are
the one exception: Add + Add + the standard LayerNormalization, which ONNX Runtime's CPU kernel
runs faster than its fused SkipLayerNormalization (the session keeps it from re-fusing them,
see :data:`UNFUSED`).

Only single-sequence inputs are embedded, so the token-type row 0 is folded into the position
table and the graph takes ``input_ids`` and ``attention_mask``. Padding is on the right.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedify.errors import ConfigurationError
from embedify_huggingface import onnx_file
from embedify_huggingface.choice import TORCH_HINT
from embedify_huggingface.weights import Array, read_weights

#: Bumped whenever the graph written for the same weights changes (part of the cache key).
GRAPH_FORMAT = "graph-2"
#: ONNX Runtime fusions the session must not apply to a built graph: on this graph's residual
#: connections, SkipLayerNormalization measured 3.4x the kernel time of Add + Add +
#: LayerNormalization (fp32, AVX-512, ONNX Runtime 1.32): 2-9% of the whole model, median 6%.
UNFUSED = ["SkipLayerNormFusion"]
TORCH_EXTRA_HINT = (
    "with torch installed it is exported with torch.onnx instead (or runs with "
    f"backend='torch'): {TORCH_HINT}"
)
_MICROSOFT = "com.microsoft"
_GELU_EXACT = {"gelu"}
_GELU_TANH = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}

Linear = tuple[Array, Array]  # weight (out, in), bias (out,)
Norm = tuple[Array, Array]  # gamma, beta


@dataclass
class Layer:
    query: Linear
    key: Linear
    value: Linear
    attention_output: Linear
    attention_norm: Norm
    intermediate: Linear
    output: Linear
    output_norm: Norm


@dataclass
class Encoder:
    family: str
    num_heads: int
    activation: str
    epsilon: float
    word_embeddings: Array
    position_embeddings: Array  # row i is input position i (offsets and token type 0 folded in)
    embedding_norm: Norm
    layers: list[Layer]
    relative_attention_bias: Array | None = None  # MPNet: (buckets, heads)

    @property
    def hidden_size(self) -> int:
        return int(self.word_embeddings.shape[1])


def supports(model_type: str | None) -> bool:
    return model_type in _READERS


def read_config(folder: Path) -> dict[str, Any]:
    file = folder / "config.json"
    if not file.exists():
        raise ConfigurationError(f"{folder} has no config.json; it is not a transformers model")
    config: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return config


def unknown_architecture(folder: Path, model_type: Any) -> ConfigurationError:
    known = ", ".join(sorted(_READERS))
    return ConfigurationError(
        f"{folder}: the ONNX graph builder does not know the architecture {model_type!r} "
        f"(it knows {known}); {TORCH_EXTRA_HINT}"
    )


def read_encoder(folder: Path) -> Encoder:
    """The encoder in ``folder``, read from its ``config.json`` and safetensors weights."""
    config = read_config(folder)
    model_type = config.get("model_type")
    if not supports(model_type):
        raise unknown_architecture(folder, model_type)
    weights = read_weights(folder)
    return _READERS[str(model_type)](config, _Weights(weights, str(model_type)))


class _Weights:
    """Tensors by name, whatever prefix the checkpoint was saved with (``bert.``, ``roberta.``)."""

    def __init__(self, tensors: dict[str, Array], model_type: str) -> None:
        self.tensors = tensors
        candidates = ["", f"{model_type.replace('-', '_')}.", "bert.", "roberta.", "model."]
        prefix = next(
            (p for p in candidates if f"{p}embeddings.word_embeddings.weight" in tensors), None
        )
        if prefix is None:
            raise ConfigurationError(
                f"the weights hold no embeddings.word_embeddings.weight for {model_type!r}; "
                f"{TORCH_EXTRA_HINT}"
            )
        self.prefix: str = prefix

    def __getitem__(self, name: str) -> Array:
        return self.tensors[self.prefix + name]

    def get(self, name: str) -> Array | None:
        return self.tensors.get(self.prefix + name)

    def linear(self, name: str) -> Linear:
        return self[f"{name}.weight"], self[f"{name}.bias"]

    def norm(self, name: str) -> Norm:
        return self[f"{name}.weight"], self[f"{name}.bias"]

    def layers(self, names: dict[str, str], count: int) -> list[Layer]:
        """``count`` layers whose tensors are named by ``names`` (``{i}``: the layer's index).
        Every field of a Layer is a (weight, bias) pair, whether a linear map or a norm."""
        return [
            Layer(**{field: self.linear(name.format(i=i)) for field, name in names.items()})
            for i in range(count)
        ]


# Each family's tensor name for each field of a Layer.
_BERT_LAYER = {
    "query": "encoder.layer.{i}.attention.self.query",
    "key": "encoder.layer.{i}.attention.self.key",
    "value": "encoder.layer.{i}.attention.self.value",
    "attention_output": "encoder.layer.{i}.attention.output.dense",
    "attention_norm": "encoder.layer.{i}.attention.output.LayerNorm",
    "intermediate": "encoder.layer.{i}.intermediate.dense",
    "output": "encoder.layer.{i}.output.dense",
    "output_norm": "encoder.layer.{i}.output.LayerNorm",
}
_DISTILBERT_LAYER = {
    "query": "transformer.layer.{i}.attention.q_lin",
    "key": "transformer.layer.{i}.attention.k_lin",
    "value": "transformer.layer.{i}.attention.v_lin",
    "attention_output": "transformer.layer.{i}.attention.out_lin",
    "attention_norm": "transformer.layer.{i}.sa_layer_norm",
    "intermediate": "transformer.layer.{i}.ffn.lin1",
    "output": "transformer.layer.{i}.ffn.lin2",
    "output_norm": "transformer.layer.{i}.output_layer_norm",
}
_MPNET_LAYER = {
    **_BERT_LAYER,
    "query": "encoder.layer.{i}.attention.attn.q",
    "key": "encoder.layer.{i}.attention.attn.k",
    "value": "encoder.layer.{i}.attention.attn.v",
    "attention_output": "encoder.layer.{i}.attention.attn.o",
    "attention_norm": "encoder.layer.{i}.attention.LayerNorm",
}


def _activation(name: str) -> str:
    if name not in _GELU_EXACT | _GELU_TANH | {"relu"}:
        raise ConfigurationError(f"activation {name!r} is not supported; {TORCH_EXTRA_HINT}")
    return name


def _positions(weights: _Weights, offset: int) -> Array:
    table = weights["embeddings.position_embeddings.weight"][offset:]
    token_type = weights.get("embeddings.token_type_embeddings.weight")
    return table + token_type[0] if token_type is not None else table


def _bert(config: dict[str, Any], weights: _Weights) -> Encoder:
    """BERT, and RoBERTa-like models whose positions start after the padding index."""
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigurationError(
            f"position_embedding_type {config['position_embedding_type']!r} is not supported; "
            f"{TORCH_EXTRA_HINT}"
        )
    roberta_like = config["model_type"] in ("roberta", "xlm-roberta", "camembert")
    offset = int(config.get("pad_token_id", 1)) + 1 if roberta_like else 0
    layers = weights.layers(_BERT_LAYER, int(config["num_hidden_layers"]))
    return Encoder(
        family=config["model_type"],
        num_heads=int(config["num_attention_heads"]),
        activation=_activation(config.get("hidden_act", "gelu")),
        epsilon=float(config.get("layer_norm_eps", 1e-12)),
        word_embeddings=weights["embeddings.word_embeddings.weight"],
        position_embeddings=_positions(weights, offset),
        embedding_norm=weights.norm("embeddings.LayerNorm"),
        layers=layers,
    )


def _distilbert(config: dict[str, Any], weights: _Weights) -> Encoder:
    layers = weights.layers(_DISTILBERT_LAYER, int(config["n_layers"]))
    return Encoder(
        family="distilbert",
        num_heads=int(config["n_heads"]),
        activation=_activation(config.get("activation", "gelu")),
        epsilon=1e-12,  # fixed in DistilBERT's code, not in its config
        word_embeddings=weights["embeddings.word_embeddings.weight"],
        position_embeddings=_positions(weights, 0),
        embedding_norm=weights.norm("embeddings.LayerNorm"),
        layers=layers,
    )


def _mpnet(config: dict[str, Any], weights: _Weights) -> Encoder:
    layers = weights.layers(_MPNET_LAYER, int(config["num_hidden_layers"]))
    return Encoder(
        family="mpnet",
        num_heads=int(config["num_attention_heads"]),
        activation=_activation(config.get("hidden_act", "gelu")),
        epsilon=float(config.get("layer_norm_eps", 1e-12)),
        word_embeddings=weights["embeddings.word_embeddings.weight"],
        position_embeddings=_positions(weights, int(config.get("pad_token_id", 1)) + 1),
        embedding_norm=weights.norm("embeddings.LayerNorm"),
        layers=layers,
        relative_attention_bias=weights["encoder.relative_attention_bias.weight"],
    )


_READERS: dict[str, Callable[[dict[str, Any], _Weights], Encoder]] = {
    "bert": _bert,
    "roberta": _bert,
    "xlm-roberta": _bert,
    "camembert": _bert,
    "distilbert": _distilbert,
    "mpnet": _mpnet,
}


def relative_position_buckets(
    max_length: int, num_buckets: int = 32, max_distance: int = 128
) -> Array:
    """MPNet's bucket of each relative position ``key - query`` in ``[1 - max_length,
    max_length - 1]`` (index ``relative + max_length - 1``), computed as MPNet computes it."""
    relative = np.arange(1 - max_length, max_length, dtype=np.int64)
    distance = -relative
    half = num_buckets // 2
    bucket = (distance < 0).astype(np.int64) * half
    distance = np.abs(distance)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (
            np.log(distance.astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(max_distance / max_exact))
            * np.float32(half - max_exact)
        )
    large = max_exact + np.nan_to_num(scaled, neginf=0).astype(np.int64)
    large = np.minimum(large, half - 1)
    result: Array = bucket + np.where(distance < max_exact, distance, large)
    return result


def save_onnx(encoder: Encoder, target: Path) -> None:
    """Write the encoder as an ONNX file: ``input_ids``, ``attention_mask`` (int64, batch x
    sequence) in, ``token_embeddings`` (float32, batch x sequence x hidden) out."""
    nodes: list[bytes] = []
    initializers: list[tuple[str, Array]] = []

    def constant(name: str, array: Array) -> str:
        initializers.append((name, array))
        return name

    def node(op: str, inputs: list[str], output: str, microsoft: bool = False, **attrs: Any) -> str:
        domain = _MICROSOFT if microsoft else ""
        outputs = [output, f"{output}.mask_index"] if op == "EmbedLayerNormalization" else [output]
        nodes.append(onnx_file.node(op, inputs, outputs, output, domain, **attrs))
        return output

    def transposed(name: str, linear: Linear) -> tuple[str, str]:
        weight, bias = linear
        return constant(f"{name}.weight", weight.T), constant(f"{name}.bias", bias)

    def residual_norm(projected: str, bias: str, skip: str, norm: Norm, output: str) -> str:
        """LayerNorm(projected + bias + skip): a sublayer's output joining the residual."""
        biased = node("Add", [projected, bias], f"{output}.biased")
        summed = node("Add", [biased, skip], f"{output}.residual")
        gamma = constant(f"{output}.gamma", norm[0])
        beta = constant(f"{output}.beta", norm[1])
        return node(
            "LayerNormalization", [summed, gamma, beta], output, axis=-1, epsilon=encoder.epsilon
        )

    ids = node("Cast", ["input_ids"], "input_ids_int32", to=onnx_file.INT32)
    mask = node("Cast", ["attention_mask"], "attention_mask_int32", to=onnx_file.INT32)
    hidden = node(
        "EmbedLayerNormalization",
        [
            ids,
            "",
            constant("word_embeddings", encoder.word_embeddings),
            constant("position_embeddings", encoder.position_embeddings),
            "",
            constant("embeddings.gamma", encoder.embedding_norm[0]),
            constant("embeddings.beta", encoder.embedding_norm[1]),
        ],
        "embeddings",
        microsoft=True,
        epsilon=encoder.epsilon,
    )
    attention_inputs = [mask]
    if encoder.relative_attention_bias is not None:
        attention_inputs += ["", _relative_bias(encoder, node, constant)]
    for index, layer in enumerate(encoder.layers):
        name = f"layer{index}"
        qkv_weight = np.concatenate([layer.query[0].T, layer.key[0].T, layer.value[0].T], axis=1)
        qkv_bias = np.concatenate([layer.query[1], layer.key[1], layer.value[1]])
        attended = node(
            "Attention",
            [
                hidden,
                constant(f"{name}.qkv.weight", qkv_weight),
                constant(f"{name}.qkv.bias", qkv_bias),
                *attention_inputs,
            ],
            f"{name}.attention",
            microsoft=True,
            num_heads=encoder.num_heads,
        )
        weight, bias = transposed(f"{name}.attention_output", layer.attention_output)
        projected = node("MatMul", [attended, weight], f"{name}.attention_output")
        normed = residual_norm(
            projected, bias, hidden, layer.attention_norm, f"{name}.attention_norm"
        )
        weight, bias = transposed(f"{name}.intermediate", layer.intermediate)
        inner = node("MatMul", [normed, weight], f"{name}.intermediate")
        if encoder.activation in _GELU_EXACT:
            inner = node("BiasGelu", [inner, bias], f"{name}.gelu", microsoft=True)
        elif encoder.activation in _GELU_TANH:
            inner = node("FastGelu", [inner, bias], f"{name}.gelu", microsoft=True)
        else:
            inner = node("Relu", [node("Add", [inner, bias], f"{name}.biased")], f"{name}.relu")
        weight, bias = transposed(f"{name}.output", layer.output)
        outer = node("MatMul", [inner, weight], f"{name}.output")
        last = index == len(encoder.layers) - 1
        hidden = residual_norm(
            outer,
            bias,
            normed,
            layer.output_norm,
            "token_embeddings" if last else f"{name}.output_norm",
        )
    if not encoder.layers:
        hidden = node("Identity", [hidden], "token_embeddings")
    onnx_file.save_model(
        target,
        graph_name=f"embedify-{encoder.family}",
        nodes=nodes,
        initializers=initializers,
        inputs=[
            onnx_file.value_info(name, onnx_file.INT64, ["batch", "sequence"])
            for name in ("input_ids", "attention_mask")
        ],
        outputs=[
            onnx_file.value_info(
                "token_embeddings", onnx_file.FLOAT, ["batch", "sequence", encoder.hidden_size]
            )
        ],
        opsets={"": 17, _MICROSOFT: 1},
        producer="embedify",
    )


def _relative_bias(
    encoder: Encoder,
    node: Callable[..., str],
    constant: Callable[[str, Array], str],
) -> str:
    """MPNet's relative position bias, (1, heads, sequence, sequence), built from the length."""
    max_length = len(encoder.position_embeddings)
    shape = node("Shape", ["input_ids"], "relative.shape")
    length = node(
        "Gather", [shape, constant("relative.one", np.array(1, dtype=np.int64))], "relative.length"
    )
    positions = node(
        "Range",
        [constant("relative.zero", np.array(0, dtype=np.int64)), length, "relative.one"],
        "relative.positions",
    )
    keys = node(
        "Unsqueeze",
        [positions, constant("relative.axis0", np.array([0], dtype=np.int64))],
        "relative.k",
    )
    queries = node(
        "Unsqueeze",
        [positions, constant("relative.axis1", np.array([1], dtype=np.int64))],
        "relative.q",
    )
    relative = node("Sub", [keys, queries], "relative.distance")
    index = node(
        "Add",
        [relative, constant("relative.offset", np.array(max_length - 1, dtype=np.int64))],
        "relative.index",
    )
    table = relative_position_buckets(max_length, len(encoder.relative_attention_bias))  # type: ignore[arg-type]
    buckets = node("Gather", [constant("relative.buckets", table), index], "relative.bucket")
    bias = node(
        "Gather",
        [constant("relative.bias_table", encoder.relative_attention_bias), buckets],  # type: ignore[arg-type]
        "relative.bias_per_pair",
    )
    heads_first = node("Transpose", [bias], "relative.heads_first", perm=[2, 0, 1])
    return node("Unsqueeze", [heads_first, "relative.axis0"], "relative.bias")


def write_onnx(source: Path, target: Path) -> None:
    """Build the graph of the model folder ``source`` and save it as ``target``."""
    save_onnx(read_encoder(source), target)
