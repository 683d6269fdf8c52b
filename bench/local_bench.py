"""Local-model benchmark (not a test): `python bench/local_bench.py [--texts 4000]`.

all-MiniLM-L6-v2 (from embedify-pack-minilm) on the same varied texts, each runner in its own
process (so peak RSS and cold start are its own), side by side in one run:

    sentence-transformers encode (the baseline), fastembed and LlamaIndex HuggingFaceEmbedding
    (when installed), embedify torch, embedify ONNX fp32, embedify ONNX int8 (the fast path).

Reported: texts/s and the ratio to sentence-transformers, cold start (load + first embedding),
peak RSS, cosine to sentence-transformers (min/mean), top-10 neighbour overlap against the
fp32 results, and the share of this machine's measured fp32 GEMM peak that the transformer
FLOPs reach.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

STDLIB = (
    "argparse asyncio collections concurrent.futures csv datetime decimal email "
    "functools http.client http.server inspect io json logging multiprocessing os "
    "pathlib pickle random re shutil socket sqlite3 statistics string subprocess "
    "tarfile threading typing unittest urllib.request uuid xml.etree.ElementTree zipfile"
).split()


def make_texts(count: int) -> list[str]:
    """Real, varied English: the paragraphs of standard-library docstrings (offline, stable)."""
    import importlib
    import inspect

    paragraphs: dict[str, None] = {}
    for name in STDLIB:
        module = importlib.import_module(name)
        for _, member in [("", module), *inspect.getmembers(module)]:
            for paragraph in (inspect.getdoc(member) or "").split("\n\n"):
                words = paragraph.split()
                if len(words) >= 5:
                    paragraphs[" ".join(words[:400])] = None
    texts = list(paragraphs)
    return [texts[i % len(texts)] + ("" if i < len(texts) else f" ({i})") for i in range(count)]


def minilm_folder() -> Path:
    from embedify_pack_minilm import model_folder

    return model_folder()


def run_one(runner: str, texts: list[str], out: Path) -> dict[str, Any]:
    """Load, embed one text (cold start), embed everything; runs in a fresh process."""
    folder = minilm_folder()
    started = time.perf_counter()
    if runner == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(folder), device="cpu")

        def embed(batch: list[str]) -> np.ndarray:
            return st.encode(batch, batch_size=32, convert_to_numpy=True)
    elif runner.startswith("embedify"):
        import embedify

        options = {
            "embedify-torch": {"backend": "torch"},
            "embedify-onnx": {"backend": "onnx"},
            "embedify-int8": {"backend": "onnx", "quantize": "int8"},
        }[runner]
        model = embedify.get_model(f"local:{folder}", **options)

        def embed(batch: list[str]) -> np.ndarray:
            return model.embed(batch)
    elif runner == "fastembed":
        from fastembed import TextEmbedding  # type: ignore[import-not-found]
        from fastembed.common.model_description import (  # type: ignore[import-not-found]
            ModelSource,
            PoolingType,
        )

        onnx_folder = Path(os.environ["BENCH_ONNX_FOLDER"])
        TextEmbedding.add_custom_model(
            model="bench/minilm",
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf="bench/minilm"),
            dim=384,
            model_file="model.onnx",
        )
        fe = TextEmbedding("bench/minilm", specific_model_path=str(onnx_folder))

        def embed(batch: list[str]) -> np.ndarray:
            return np.stack(list(fe.embed(batch, batch_size=32)))
    elif runner == "llamaindex":
        from llama_index.embeddings.huggingface import (  # type: ignore[import-not-found]
            HuggingFaceEmbedding,
        )

        li = HuggingFaceEmbedding(model_name=str(folder), device="cpu")

        def embed(batch: list[str]) -> np.ndarray:
            return np.asarray(li.get_text_embedding_batch(batch), dtype=np.float32)
    else:
        raise SystemExit(f"unknown runner {runner}")
    embed(["warm up: cold start ends with the first embedding"])
    cold = time.perf_counter() - started
    started = time.perf_counter()
    vectors = np.asarray(embed(texts), dtype=np.float32)
    seconds = time.perf_counter() - started
    np.save(out, vectors)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"runner": runner, "cold_start": cold, "seconds": seconds, "peak_rss_mb": rss}


def gemm_peak_gflops() -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(5):
        a @ a
    return 5 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9


def transformer_gflop(texts: list[str]) -> float:
    """FLOPs of MiniLM-L6's encoder for these texts (2 x weights x tokens, plus attention)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.no_padding()  # the file asks for padding to 128
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    hidden, layers, ffn = 384, 6, 1536
    per_token = layers * 2 * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = sum(layers * 2 * 2 * n * n * hidden for n in lengths)
    return (per_token * sum(lengths) + attention) / 1e9


def top10_overlap(vectors: np.ndarray, reference: np.ndarray, queries: int = 200) -> float:
    overlaps = []
    for q in range(queries):
        ours = set(np.argsort(-(vectors @ vectors[q]))[1:11])
        theirs = set(np.argsort(-(reference @ reference[q]))[1:11])
        overlaps.append(len(ours & theirs) / 10)
    return float(np.mean(overlaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--runner")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    texts = make_texts(args.texts)
    if args.runner:
        print(json.dumps(run_one(args.runner, texts, args.out)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="embedify-bench-"))
    env = {**os.environ, "EMBEDIFY_CACHE_DIR": str(scratch / "cache"), "HF_HUB_OFFLINE": "1"}
    # Exports happen once, before timing: every later run loads the cached export, as users do.
    warm = (
        "import embedify, sys; f = sys.argv[1]; "
        "embedify.get_model('local:' + f).embed(['x']); "
        "embedify.get_model('local:' + f, quantize='int8').embed(['x'])"
    )
    subprocess.run([sys.executable, "-c", warm, str(minilm_folder())], env=env, check=True)
    onnx_folder = scratch / "onnx-export"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "embedify",
            "export",
            "onnx",
            str(minilm_folder()),
            str(onnx_folder),
        ],
        env=env,
        check=False,
        capture_output=True,
    )
    env["BENCH_ONNX_FOLDER"] = str(onnx_folder)
    runners = [
        "sentence-transformers",
        "fastembed",
        "llamaindex",
        "embedify-torch",
        "embedify-onnx",
        "embedify-int8",
    ]
    results: dict[str, dict[str, Any]] = {}
    for runner in runners:
        out = scratch / f"{runner}.npy"
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--runner",
                runner,
                "--out",
                str(out),
                "--texts",
                str(args.texts),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["failed"])[-1][:90]
            print(f"{runner:22s} not measured: {reason}")
            continue
        results[runner] = json.loads(done.stdout.strip().splitlines()[-1])
        results[runner]["vectors"] = np.load(out)

    peak = gemm_peak_gflops()
    flops = transformer_gflop(texts)
    base = results.get("sentence-transformers")
    exact = results.get("embedify-onnx", base)
    print(
        f"\n{len(texts)} texts, all-MiniLM-L6-v2, {os.cpu_count()} cores; numpy fp32 GEMM peak "
        f"{peak:.0f} GFLOP/s; the encoder needs {flops:.0f} GFLOP for these texts"
    )
    print(
        f"{'runner':22s} {'texts/s':>8s} {'vs ST':>6s} {'cold s':>7s} {'RSS MB':>7s} "
        f"{'cos min':>8s} {'cos mean':>8s} {'top10':>6s} {'%peak':>6s}"
    )
    for runner, r in results.items():
        rate = len(texts) / r["seconds"]
        ratio = r["seconds"] and (base["seconds"] / r["seconds"] if base else float("nan"))
        cos_min = cos_mean = overlap = float("nan")
        if base is not None:
            v, b = r["vectors"], base["vectors"]
            cos = (v * b).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(b, axis=1))
            cos_min, cos_mean = float(cos.min()), float(cos.mean())
        if exact is not None:
            overlap = top10_overlap(r["vectors"], exact["vectors"])
        share = 100 * flops / r["seconds"] / peak
        print(
            f"{runner:22s} {rate:8.0f} {ratio:6.2f} {r['cold_start']:7.2f} "
            f"{r['peak_rss_mb']:7.0f} {cos_min:8.5f} {cos_mean:8.5f} {overlap:6.3f} {share:6.1f}"
        )
    docs = Path(__file__).resolve().parents[1] / "docs"
    search = [sys.executable, "-m", "embedify", "search", "-m", f"local:{onnx_folder}", str(docs)]
    subprocess.run([*search, "index it"], env=env, capture_output=True, check=True)
    started = time.perf_counter()
    subprocess.run([*search, "how are retries done"], env=env, capture_output=True, check=True)
    print(
        f"\nembedify search on an indexed folder with an exported model (whole process): "
        f"{time.perf_counter() - started:.2f} s"
    )


if __name__ == "__main__":
    main()
