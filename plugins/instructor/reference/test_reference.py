"""Equivalence with the original ``INSTRUCTOR`` class (InstructorEmbedding 1.0.1).

Runs only in ``nox -s instructor-reference``: that package needs sentence-transformers 2.2.2,
transformers 4.46 and huggingface_hub < 0.26, which the main suite does not use. The tiny T5
folder is written in the 2.2.2 layout by hand (2.2.2 cannot save the ST 6 way).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import embedify

# The tiny-model builders live with the local provider's tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "huggingface" / "tests"))
import tiny_models

INSTRUCTION = "Represent the science question:"
TEXTS = ["what is rain", "cats and dogs on a mat", "computer science question"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tiny_models.t5(tmp_path_factory.mktemp("instructor-2.2.2"))
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    tokenizer_config["model_input_names"] = ["input_ids", "attention_mask"]  # as T5's tokenizer
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    modules = [
        ("", "Transformer"),
        ("1_Pooling", "Pooling"),
        ("2_Dense", "Dense"),
        ("3_Normalize", "Normalize"),
    ]
    (out / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": i,
                    "name": str(i),
                    "path": path,
                    "type": f"sentence_transformers.models.{kind}",
                }
                for i, (path, kind) in enumerate(modules)
            ]
        )
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 48, "do_lower_case": False})
    )
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    (out / "2_Dense").mkdir()
    (out / "2_Dense" / "config.json").write_text(
        json.dumps(
            {
                "in_features": 32,
                "out_features": 16,
                "bias": True,
                "activation_function": "torch.nn.modules.activation.Tanh",
            }
        )
    )
    dense = torch.nn.Linear(32, 16)
    weights = {"linear.weight": dense.weight.detach(), "linear.bias": dense.bias.detach()}
    save_file(weights, str(out / "2_Dense" / "model.safetensors"))
    torch.save(weights, out / "2_Dense" / "pytorch_model.bin")  # what 2.2.2 reads
    (out / "3_Normalize").mkdir()
    return out


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_equals_the_original_instructor(folder: Path, backend: str) -> None:
    from InstructorEmbedding import INSTRUCTOR

    original = INSTRUCTOR(str(folder), device="cpu").encode([[INSTRUCTION, t] for t in TEXTS])
    ours = embedify.get_model(
        f"instructor:{folder}", instruction=INSTRUCTION, backend=backend
    ).embed(TEXTS)
    cosine = (ours * original).sum(1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(original, axis=1)
    )
    assert cosine.min() >= 0.99999, cosine
