"""The CUDA path of the local provider and of `embedify serve`, on a machine with a GPU.

    python bench/cuda_check.py

Builds tiny random models of several families (the tests' builders, real loading code), then
checks, per family: embedify on CUDA (fp32) against sentence-transformers on CUDA and against
embedify's ONNX Runtime path on the CPU (cosine >= 0.99999), float16/bfloat16 on CUDA against
fp32 (>= 0.999), and a round trip through `embedify serve` running the CUDA model. Prints one
line per check and exits non-zero on any failure. CI has no GPU: this runs on a lent one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins/huggingface/tests"))

import tiny_models

TEXTS = [
    "the cat sat on the mat",
    "what is photosynthesis",
    "photosynthesis turns light into chemical energy",
    "quarterly revenue grew by twelve percent",
    "it is raining cats and dogs here 🙂",
    "recipe for sourdough bread needs patience " * 6,
]
DEVICE = os.environ.get("CHECK_DEVICE", "cuda")  # "cpu" for a dry run of the script itself
failures: list[str] = []


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def check(name: str, value: float, floor: float) -> None:
    ok = value >= floor
    print(f"{'ok  ' if ok else 'FAIL'} {name}: min cosine {value:.6f} (floor {floor})")
    if not ok:
        failures.append(name)


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    import embedify

    shown = torch.cuda.get_device_name(0) if DEVICE == "cuda" else DEVICE
    print(f"torch {torch.__version__}, device: {shown}")
    root = Path(tempfile.mkdtemp())
    families = {
        "bert-mean": (tiny_models.bert, "mean"),
        "mpnet-mean": (tiny_models.mpnet, "mean"),
        "xlm-roberta-cls": (tiny_models.xlm_roberta, "cls"),
    }
    for family, (build, pooling) in families.items():
        folder = tiny_models.sentence_transformer_folder(
            build(root / f"{family}-hf"), root / family, pooling=pooling, normalize=True
        )
        reference = SentenceTransformer(str(folder), device=DEVICE).encode(TEXTS)
        onnx_cpu = embedify.get_model(f"local:{folder}").embed(TEXTS)
        cuda = embedify.get_model(f"local:{folder}", device=DEVICE).embed(TEXTS)
        check(
            f"{family} {DEVICE} fp32 vs sentence-transformers {DEVICE}",
            cosine_min(cuda, reference),
            0.99999,
        )
        check(f"{family} {DEVICE} fp32 vs ONNX CPU", cosine_min(cuda, onnx_cpu), 0.99999)
        for dtype in ("float16", "bfloat16"):
            half = embedify.get_model(f"local:{folder}", device=DEVICE, dtype=dtype).embed(TEXTS)
            check(f"{family} {DEVICE} {dtype} vs fp32", cosine_min(half, cuda), 0.999)

    import httpx
    from embedify_server.testing import running_server

    folder = root / "bert-mean"
    model = embedify.get_model(f"local:{folder}", device=DEVICE)
    expected = model.embed(TEXTS)
    with running_server(model) as url:
        answer = httpx.post(f"{url}/v1/embeddings", json={"input": TEXTS, "model": "m"}).json()
        served = np.array([row["embedding"] for row in answer["data"]], dtype=np.float32)
        check(f"embedify serve on {DEVICE} vs in-process", cosine_min(served, expected), 0.99999)
        tei = httpx.post(f"{url}/embed", json={"inputs": TEXTS}).json()
        check(f"embedify serve /embed on {DEVICE}", cosine_min(np.array(tei), expected), 0.99999)
    print("all CUDA checks passed" if not failures else f"{len(failures)} CUDA checks FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
