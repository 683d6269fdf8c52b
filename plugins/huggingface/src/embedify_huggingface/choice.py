"""Which runtime and precision a local model runs with, and why.

:func:`choose` is a pure function of the CPU's flags, the runtimes installed and the user's
options, so every branch is tested with made-up CPUs; :func:`cpu_flags` and
:func:`installed_runtimes` read the machine. By default the fastest setting that keeps search
results (top-10 neighbours >= 0.99 of exact float32 on our retrieval check): bfloat16 on
OpenVINO where the CPU has bf16 matrix instructions (AMX or AVX512-BF16), else float32 on the
fastest float32 runtime installed (docs/benchmarks.md has the measurements behind both).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from embedify.errors import ConfigurationError

Runtime = Literal["onnxruntime", "openvino", "torch"]
Precision = Literal["float32", "bfloat16", "float16", "int8"]

#: Flags that make bfloat16 matrix products fast (OpenVINO runs bf16 only with one of them).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: Flags the bench and ``--verbose`` show: the ones that decide how fast the encoder runs.
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
GPU_DEVICE = re.compile(r"cuda(:\d+)?|mps")
DEVICES = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


def install_hint(extra: str, packages: str) -> str:
    """How to add an extra of this plugin: the packages themselves, or the extra from a
    checkout (the distribution is not on the package index yet)."""
    return (
        f"pip install {packages} (or, from an embedify checkout, "
        f"pip install './plugins/huggingface[{extra}]'; published as embedify-huggingface[{extra}])"
    )


FAST_HINT = install_hint("fast", "openvino")
TORCH_HINT = install_hint("torch", "torch transformers")
QUANTIZE_HINT = install_hint("quantize", "onnx")


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    precision: Precision
    reason: str

    @property
    def compute(self) -> str | None:
        """What goes into the fingerprint: None for exact float32, else the precision."""
        return None if self.precision == "float32" else self.precision

    def __str__(self) -> str:
        return f"{self.precision} on {self.runtime}: {self.reason}"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read, which chooses the
    float32 path that runs everywhere."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    found = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return frozenset(found.group(1).split()) if found else frozenset()


def installed_runtimes() -> frozenset[str]:
    """The runtimes that can be imported (found without importing them: torch takes seconds)."""
    modules = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch"}
    return frozenset(name for name, module in modules.items() if importlib.util.find_spec(module))


def _bf16_flag(flags: Iterable[str]) -> str | None:
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def choose(
    *,
    flags: frozenset[str],
    installed: frozenset[str],
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    quantize: str | None = None,
    exported_int8: bool = False,
    trust_remote_code: bool = False,
) -> RuntimeChoice:
    """The runtime and precision for these options on this CPU, or a ConfigurationError that
    names the bad combination and what to use instead. ``exported_int8``: the model folder
    holds ``model_int8.onnx`` (``embedify export onnx --quantize int8``)."""
    if device not in ("auto", "cpu") and not GPU_DEVICE.fullmatch(device):
        raise ConfigurationError(f"unknown device {device!r}; use {DEVICES}")
    bf16_flag = _bf16_flag(flags)
    if quantize == "int8" and dtype != "auto":
        raise ConfigurationError(
            f"quantize='int8' and dtype={dtype!r} ask for two precisions; give one of them"
        )
    if quantize == "int8" and (backend not in ("auto", "onnx") or device not in ("auto", "cpu")):
        raise ConfigurationError(
            "quantize='int8' runs on ONNX Runtime on the CPU: leave backend and device out"
        )
    wants_torch = (
        backend == "torch"
        or GPU_DEVICE.fullmatch(device) is not None
        or dtype == "float16"
        or trust_remote_code
        or (
            dtype == "bfloat16"
            and backend == "auto"
            and not (bf16_flag and "openvino" in installed)
        )
    )
    if wants_torch:
        return _torch_choice(backend, device, dtype, trust_remote_code, bf16_flag, installed)
    if quantize == "int8" or (exported_int8 and dtype == "auto" and backend in ("auto", "onnx")):
        reason = (
            "quantize='int8' (opt-in; top-10 0.955-0.98 of float32)"
            if quantize
            else "the folder was exported with --quantize int8 (model_int8.onnx); "
            "dtype='float32' runs its model.onnx"
        )
        return RuntimeChoice("onnxruntime", "int8", reason)
    if backend == "openvino":
        if "openvino" not in installed:
            raise ConfigurationError(f"backend='openvino' needs OpenVINO: {FAST_HINT}")
        if dtype == "bfloat16" and not bf16_flag:
            raise ConfigurationError(
                "dtype='bfloat16' on OpenVINO needs a CPU with amx_bf16 or avx512_bf16, and "
                "this one has neither (OpenVINO would run float32); use dtype='float32'"
            )
        if dtype in ("auto", "bfloat16") and bf16_flag:
            return RuntimeChoice(
                "openvino", "bfloat16", f"backend='openvino'; the CPU has {bf16_flag}"
            )
        return RuntimeChoice("openvino", "float32", "backend='openvino'")
    if backend == "onnx":
        if dtype == "bfloat16":
            raise ConfigurationError(
                "ONNX Runtime runs float32 here; dtype='bfloat16' runs on OpenVINO "
                "(backend='openvino') or torch (backend='torch')"
            )
        return RuntimeChoice("onnxruntime", "float32", "backend='onnx'")
    # backend="auto" on the CPU: bf16 where the CPU has it, else the fastest float32 runtime.
    if bf16_flag and "openvino" in installed and dtype in ("auto", "bfloat16"):
        return RuntimeChoice(
            "openvino",
            "bfloat16",
            f"the CPU has {bf16_flag}: bfloat16 keeps top-10 neighbours >= 0.99 of float32 at "
            "about 3x its speed; dtype='float32' for exact float32",
        )
    return _fastest_float32(dtype, bf16_flag, installed)


def _fastest_float32(dtype: str, bf16_flag: str | None, installed: frozenset[str]) -> RuntimeChoice:
    """OpenVINO ran float32 faster than ONNX Runtime on both CPU families measured (AMX and
    AVX2, docs/benchmarks.md), so it is preferred where installed."""
    why = "dtype='float32'" if dtype == "float32" else "the CPU has no bf16 instructions"
    if dtype == "auto" and bf16_flag:
        why = f"the CPU has {bf16_flag} but OpenVINO is not installed ({FAST_HINT})"
    if "openvino" in installed:
        return RuntimeChoice(
            "openvino", "float32", f"{why}; OpenVINO is the faster float32 runtime"
        )
    return RuntimeChoice("onnxruntime", "float32", why)


def _torch_choice(
    backend: str,
    device: str,
    dtype: str,
    trust_remote_code: bool,
    bf16_flag: str | None,
    installed: frozenset[str],
) -> RuntimeChoice:
    if backend in ("onnx", "openvino"):
        asked = (
            f"device={device!r}"
            if device not in ("auto", "cpu")
            else "trust_remote_code"
            if trust_remote_code
            else f"dtype={dtype!r}"
        )
        raise ConfigurationError(
            f"{asked} runs on torch, not backend={backend!r}: leave backend out"
        )
    if "torch" not in installed:
        asked = f"device={device!r}" if device not in ("auto", "cpu") else "this model's options"
        raise ConfigurationError(
            f"{asked} runs on torch, which is not installed: {TORCH_HINT}; or leave it out "
            "to run on ONNX Runtime on the CPU"
        )
    precision: Precision = "float32" if dtype == "auto" else dtype  # type: ignore[assignment]
    if device not in ("auto", "cpu"):
        reason = f"device={device!r}"
    elif trust_remote_code:
        reason = "trust_remote_code: the model's own code runs on torch"
    elif backend == "torch":
        reason = "backend='torch'"
    else:
        reason = f"dtype={dtype!r} on the CPU"
        if dtype == "bfloat16" and not bf16_flag:
            reason += " (emulated: no amx_bf16/avx512_bf16 here, slower than float32)"
        elif dtype == "bfloat16":
            reason += f" (OpenVINO runs it faster: {FAST_HINT})"
    return RuntimeChoice("torch", precision, reason)
