"""Local-model benchmark (not a test): ``python bench/local_bench.py [--texts 300] [--repeats 3]``.

all-MiniLM-L6-v2 (embedify-pack-minilm) on a users' mix of real English (standard-library
docstrings): 20% short queries (<= 16 words), 50% passages of 40-120 words, 30% of 150-250
words. Each length class is timed apart (the engine sorts by length, so a mix is its classes
one after the other); the mix is the sum. Printed, from one run:

- the CPU model and its SIMD flags, and what ``local`` chooses on it (runtime, precision, why);
- the MatMul peak of each runtime and precision at the model's shapes (ONNX Runtime fp32 and
  int8 (u8s8 MatMulInteger), OpenVINO fp32 and, where the CPU has bf16, bf16; torch fp32 and
  bf16), measured once per round among the runners, median;
- per runtime x precision and length class: texts/s, the ratio to sentence-transformers fp32
  and to sentence-transformers bf16 (``model.to(torch.bfloat16)``: the best simple setting a
  sentence-transformers user has), and the share of its own runtime's peak reached by useful
  FLOPs (real tokens only, no padding);
- top-10 neighbour overlap with sentence-transformers fp32 on a retrieval set (each docstring's
  first line as the query, the passages as the corpus) and the lowest cosine to it.

Warm-up apart, median of ``--repeats`` timed runs, runner order rotated each round. Runners
share one process and its cores (threads left to each library's default).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
STDLIB = (
    "argparse asyncio collections concurrent.futures csv datetime decimal email functools "
    "http.client http.server inspect io json logging multiprocessing os pathlib pickle random re "
    "shutil socket sqlite3 statistics string subprocess tarfile threading typing unittest "
    "urllib.request uuid xml.etree.ElementTree zipfile"
).split()
CLASSES = {"query": (3, 16), "passage-80": (40, 120), "passage-200": (150, 250)}
SHARES = {"query": 0.2, "passage-80": 0.5, "passage-200": 0.3}
PEAKS = "MatMul peaks"
ST_FP32, ST_BF16 = "sentence-transformers fp32", "sentence-transformers bf16"


def cpu_description() -> str:
    from embedify_huggingface.choice import SHOWN_FLAGS, cpu_flags

    model = "unknown CPU"
    try:
        found = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        model = found.group(1) if found else model
    except OSError:
        pass
    flags = cpu_flags()
    present = " ".join(flag for flag in SHOWN_FLAGS if flag in flags) or "unknown"
    return f"{model}, {os.cpu_count()} logical cores; flags: {present}"


def docstrings() -> list[tuple[str, str]]:
    """(first line, body) of standard-library docstrings: real queries and real passages."""
    found: dict[str, str] = {}
    for name in STDLIB:
        module = importlib.import_module(name)
        for _, member in [("", module), *inspect.getmembers(module)]:
            doc = inspect.getdoc(member) or ""
            first, _, body = doc.partition("\n")
            if len(first.split()) >= 4 and len(body.split()) >= 40:
                found.setdefault(first.strip(), " ".join(body.split()))
    return sorted(found.items())


def workload(total: int) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Texts per length class, and a retrieval set (queries, passages) from the same docs."""
    docs = docstrings()
    words = " ".join(body for _, body in docs).split()
    rng = np.random.default_rng(0)
    classes: dict[str, list[str]] = {}
    for name, (low, high) in CLASSES.items():
        count = round(total * SHARES[name])
        if name == "query":
            pool = [first for first, _ in docs if low <= len(first.split()) <= high]
            classes[name] = [pool[i % len(pool)] for i in range(count)]
            continue
        texts = []
        for _ in range(count):
            length = int(rng.integers(low, high + 1))
            start = int(rng.integers(0, len(words) - length))
            texts.append(" ".join(words[start : start + length]))
        classes[name] = texts
    retrieval = docs[: min(len(docs), 400)]
    return classes, [q for q, _ in retrieval], [" ".join(b.split()[:200]) for _, b in retrieval]


def _matmul_file(folder: Path, inner: int, outer: int, integer: bool) -> Path:
    """One MatMul (fp32) or MatMulInteger (u8 x s8 -> int32) against a constant weight."""
    from embedify_huggingface import onnx_file

    rng = np.random.default_rng(0)
    file = folder / f"matmul-{inner}-{outer}-{integer}.onnx"
    if integer:
        weight = rng.integers(-127, 128, (inner, outer)).astype(np.int8)
        nodes = [onnx_file.node("MatMulInteger", ["x", "w"], ["y"], "matmul")]
        inputs = [onnx_file.value_info("x", onnx_file.UINT8, ["rows", inner])]
        outputs = [onnx_file.value_info("y", onnx_file.INT32, ["rows", outer])]
    else:
        weight = rng.standard_normal((inner, outer)).astype(np.float32)
        nodes = [onnx_file.node("MatMul", ["x", "w"], ["y"], "matmul")]
        inputs = [onnx_file.value_info("x", onnx_file.FLOAT, ["rows", inner])]
        outputs = [onnx_file.value_info("y", onnx_file.FLOAT, ["rows", outer])]
    onnx_file.save_model(
        file,
        graph_name="matmul",
        nodes=nodes,
        initializers=[("w", weight)],
        inputs=inputs,
        outputs=outputs,
        opsets={"": 17},
        producer="bench",
    )
    return file


def _best_rate(run: Callable[[], Any], flop: float, repeats: int = 5) -> float:
    """GFLOP/s, median of ``repeats`` timings of about 0.1 s each (one call at the least: an
    emulated bf16 MatMul takes a second)."""
    started = time.perf_counter()
    run()
    calls = max(1, int(0.1 / (time.perf_counter() - started)))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        times.append((time.perf_counter() - started) / calls)
    return flop / statistics.median(times) / 1e9


def matmul_peaks(hidden: int, intermediate: int, tokens: int, bf16: bool) -> dict[str, float]:
    """GFLOP/s of one MatMul at the encoder's GEMM shapes (the best of them), per runtime and
    precision: the ceiling each variant is held to."""
    import onnxruntime

    shapes = [(hidden, 3 * hidden), (hidden, intermediate), (intermediate, hidden)]
    peaks: dict[str, float] = {}

    def keep(key: str, rate: float) -> None:
        peaks[key] = max(peaks.get(key, 0.0), rate)

    with tempfile.TemporaryDirectory() as scratch:
        for inner, outer in shapes:
            flop = 2 * tokens * inner * outer
            x = np.random.default_rng(1).standard_normal((tokens, inner)).astype(np.float32)
            x8 = np.random.default_rng(1).integers(0, 256, (tokens, inner)).astype(np.uint8)
            for integer, feed, key in [
                (False, x, "onnxruntime fp32"),
                (True, x8, "onnxruntime int8"),
            ]:
                file = _matmul_file(Path(scratch), inner, outer, integer)
                session = onnxruntime.InferenceSession(
                    str(file), providers=["CPUExecutionProvider"]
                )
                keep(key, _best_rate(lambda s=session, f=feed: s.run(None, {"x": f}), flop))
            try:
                import openvino
            except ImportError:
                openvino = None
            if openvino is not None:
                core = openvino.Core()
                model = core.read_model(str(_matmul_file(Path(scratch), inner, outer, False)))
                for precision in ["f32", "bf16"] if bf16 else ["f32"]:
                    request = core.compile_model(
                        model, "CPU", {"INFERENCE_PRECISION_HINT": precision}
                    ).create_infer_request()
                    label = "openvino fp32" if precision == "f32" else "openvino bf16"
                    keep(label, _best_rate(lambda r=request, f=x: r.infer({"x": f}), flop))
            try:
                import torch
            except ImportError:
                continue
            for dtype, label in [(torch.float32, "torch fp32"), (torch.bfloat16, "torch bf16")]:
                a = torch.from_numpy(x).to(dtype)
                b = torch.randn(inner, outer).to(dtype)
                with torch.inference_mode():
                    keep(label, _best_rate(lambda a=a, b=b: a @ b, flop))
    return peaks


def useful_gflop(token_counts: list[int], layers: int, hidden: int, intermediate: int) -> float:
    """Encoder FLOPs on real tokens: projections, feed-forward, and attention over n tokens."""
    total = 0
    for n in token_counts:
        total += layers * (2 * n * (4 * hidden * hidden + 2 * hidden * intermediate))
        total += layers * 4 * n * n * hidden
    return total / 1e9


#: Runner -> the peak (runtime and arithmetic) its share is measured against. int8 runs its
#: MatMuls as MatMulNBits: 8-bit weights, fp32 arithmetic, so it is held to the fp32 peak.
PEAK_OF = {
    ST_FP32: "torch fp32",
    ST_BF16: "torch bf16",
    "onnxruntime fp32": "onnxruntime fp32",
    "onnxruntime int8 (quantize='int8')": "onnxruntime fp32",
    "openvino fp32": "openvino fp32",
    "openvino bf16": "openvino bf16",
}


def runners(folder: Path, bf16: bool) -> dict[str, Callable[[list[str]], Array]]:
    import embedify

    made: dict[str, Callable[[list[str]], Array]] = {}
    try:
        import torch
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(folder), device="cpu")
        st_bf16 = SentenceTransformer(str(folder), device="cpu").to(torch.bfloat16)
        made[ST_FP32] = lambda texts: st.encode(texts, batch_size=32)
        made[ST_BF16] = lambda texts: st_bf16.encode(texts, batch_size=32).astype(np.float32)
    except ImportError:
        print("sentence-transformers is not installed: no baseline ratio")

    def local(**options: Any) -> Callable[[list[str]], Array]:
        model = embedify.get_model(f"local:{folder}", cache=False, **options)
        return lambda texts: model.embed(texts)

    made["onnxruntime fp32"] = local(backend="onnx")
    made["onnxruntime int8 (quantize='int8')"] = local(quantize="int8")
    if importlib.util.find_spec("openvino"):
        made["openvino fp32"] = local(backend="openvino", dtype="float32")
        if bf16:
            made["openvino bf16"] = local(backend="openvino", dtype="bfloat16")
    return made


def overlap_at_10(queries: Array, passages: Array, ref_q: Array, ref_p: Array) -> float:
    ours = np.argsort(-(queries @ passages.T), axis=1)[:, :10]
    theirs = np.argsort(-(ref_q @ ref_p.T), axis=1)[:, :10]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ours, theirs)]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=300, help="texts in the mix")
    parser.add_argument("--retrieval", type=int, default=400, help="queries (and passages)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from embedify_huggingface.choice import BF16_FLAGS, cpu_flags
    from embedify_pack_minilm import model_folder

    import embedify

    folder = model_folder()
    print(cpu_description())
    print(f"local chooses: {embedify.get_model('local').runtime_choice}")
    bf16 = any(flag in cpu_flags() for flag in BF16_FLAGS)
    classes, queries, passages = workload(args.texts)
    queries, passages = queries[: args.retrieval], passages[: args.retrieval]
    counter = embedify.get_model(f"local:{folder}")
    tokens = {name: counter.count_tokens(texts) for name, texts in classes.items()}
    tokens = {name: [min(n, 256) for n in counts] for name, counts in tokens.items()}
    flop = {name: useful_gflop(counts, 6, 384, 1536) for name, counts in tokens.items()}
    for name, counts in tokens.items():
        print(f"  {name}: {len(counts)} texts, {np.mean(counts):.0f} tokens mean")

    made = runners(folder, bf16)
    names = list(made)
    reference = made.get(ST_FP32, made["onnxruntime fp32"])
    ref_q, ref_p = reference(queries), reference(passages)
    quality = {}
    for name, run in made.items():
        q, p = run(queries), run(passages)  # also the warm-up
        cosine = (p * ref_p).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(ref_p, axis=1)
        quality[name] = (overlap_at_10(q, p, ref_q, ref_p), float(cosine.min()))
        for texts in classes.values():
            run(texts[:8])
    seconds: dict[tuple[str, str], list[float]] = {}
    peaks: dict[str, list[float]] = {}
    turns = [*names, PEAKS]
    for round_ in range(args.repeats):
        shift = round_ % len(turns)
        for name in turns[shift:] + turns[:shift]:
            if name == PEAKS:  # measured in every round, so it drifts with the machine's load
                for key, rate in matmul_peaks(384, 1536, 1024, bf16).items():
                    peaks.setdefault(key, []).append(rate)
                continue
            for cls, texts in classes.items():
                started = time.perf_counter()
                made[name](texts)
                seconds.setdefault((name, cls), []).append(time.perf_counter() - started)

    peak = {key: statistics.median(rates) for key, rates in peaks.items()}
    print("\nMatMul peaks at MiniLM's shapes (1,024 rows), GFLOP/s, median of one per round:")
    for key, rates in peaks.items():
        print(f"  {key:18s} {peak[key]:7.0f}  ({', '.join(f'{r:.0f}' for r in rates)})")
    print(
        f"\n{args.repeats} runs each, median; order rotated. Shared machine: noisy.\n"
        f"{'runner':36s} {'class':12s} {'texts/s':>8s} {'xST32':>6s} {'xST16':>6s} "
        f"{'%peak':>6s} {'top10':>6s} {'cos min':>8s}"
    )

    def median_time(name: str, cls: str) -> float:
        if cls == "mix":
            return sum(statistics.median(seconds[(name, c)]) for c in classes)
        return statistics.median(seconds[(name, cls)])

    for name in names:
        overlap, cos_min = quality[name]
        for cls in [*classes, "mix"]:
            time_ = median_time(name, cls)
            count = sum(map(len, classes.values())) if cls == "mix" else len(classes[cls])
            gflop = sum(flop.values()) if cls == "mix" else flop[cls]
            ratios = [
                f"{median_time(base, cls) / time_:6.2f}" if base in made else f"{'-':>6s}"
                for base in (ST_FP32, ST_BF16)
            ]
            ceiling = peak.get(PEAK_OF[name])
            share = f"{100 * gflop / time_ / ceiling:5.1f}%" if ceiling else f"{'-':>6s}"
            print(
                f"{name:36s} {cls:12s} {count / time_:8.1f} {' '.join(ratios)} {share} "
                f"{overlap:6.3f} {cos_min:8.5f}"
            )


if __name__ == "__main__":
    main()
