"""The runtime and precision choice, as a pure function of made-up CPUs and installs."""

from __future__ import annotations

from pathlib import Path

import pytest
from embedify_huggingface.choice import choose, cpu_flags

import embedify

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_VNNI = AVX2 | {"avx512f", "avx512bw", "avx512_vnni"}
AVX512_BF16 = AVX512_VNNI | {"avx512_bf16"}
AMX = AVX512_BF16 | {"amx_tile", "amx_bf16", "amx_int8"}
WITH_OPENVINO = frozenset({"onnxruntime", "openvino", "torch"})
WITHOUT_OPENVINO = frozenset({"onnxruntime", "torch"})
LIGHT = frozenset({"onnxruntime"})


@pytest.mark.parametrize(
    ("flags", "installed", "runtime", "precision"),
    [
        (AMX, WITH_OPENVINO, "openvino", "bfloat16"),
        (AVX512_BF16, WITH_OPENVINO, "openvino", "bfloat16"),
        (AVX512_VNNI, WITH_OPENVINO, "openvino", "float32"),
        (AVX2, WITH_OPENVINO, "openvino", "float32"),
        (AMX, WITHOUT_OPENVINO, "onnxruntime", "float32"),
        (AVX512_BF16, LIGHT, "onnxruntime", "float32"),
        (AVX512_VNNI, LIGHT, "onnxruntime", "float32"),
        (AVX2, LIGHT, "onnxruntime", "float32"),
        (frozenset(), WITH_OPENVINO, "openvino", "float32"),  # flags unknown: no bf16
    ],
)
def test_default_choice_per_cpu_and_install(
    flags: frozenset[str], installed: frozenset[str], runtime: str, precision: str
) -> None:
    chosen = choose(flags=flags, installed=installed)
    assert (chosen.runtime, chosen.precision) == (runtime, precision)


def test_reasons_say_why() -> None:
    assert "amx_bf16" in choose(flags=AMX, installed=WITH_OPENVINO).reason
    missing = choose(flags=AVX512_BF16, installed=LIGHT).reason
    assert "avx512_bf16" in missing and "openvino" in missing  # what to install for the speed
    assert "no bf16" in choose(flags=AVX2, installed=LIGHT).reason


@pytest.mark.parametrize("flags", [AMX, AVX512_BF16, AVX2])
def test_float32_forces_exact_float32(flags: frozenset[str]) -> None:
    chosen = choose(flags=flags, installed=WITH_OPENVINO, dtype="float32")
    assert chosen.precision == "float32" and chosen.compute is None
    assert choose(flags=flags, installed=LIGHT, dtype="float32").runtime == "onnxruntime"


def test_only_exact_float32_leaves_the_fingerprint_alone() -> None:
    assert choose(flags=AMX, installed=WITH_OPENVINO).compute == "bfloat16"
    assert choose(flags=AVX2, installed=LIGHT, quantize="int8").compute == "int8"
    assert choose(flags=AVX2, installed=WITH_OPENVINO).compute is None


def test_int8_stays_on_onnx_runtime_and_an_int8_export_runs_as_exported() -> None:
    for flags in (AMX, AVX2):
        chosen = choose(flags=flags, installed=WITH_OPENVINO, quantize="int8")
        assert (chosen.runtime, chosen.precision) == ("onnxruntime", "int8")
        exported = choose(flags=flags, installed=WITH_OPENVINO, exported_int8=True)
        assert exported.precision == "int8" and "dtype='float32'" in exported.reason
        exact = choose(flags=flags, installed=WITH_OPENVINO, exported_int8=True, dtype="float32")
        assert exact.precision == "float32"


def test_bfloat16_asked_for() -> None:
    on_openvino = choose(flags=AVX512_BF16, installed=WITH_OPENVINO, dtype="bfloat16")
    assert (on_openvino.runtime, on_openvino.precision) == ("openvino", "bfloat16")
    emulated = choose(flags=AVX2, installed=WITH_OPENVINO, dtype="bfloat16")
    assert (emulated.runtime, emulated.precision) == ("torch", "bfloat16")
    assert "emulated" in emulated.reason  # OpenVINO would quietly run float32 on this CPU
    with pytest.raises(embedify.ConfigurationError, match="neither"):
        choose(flags=AVX2, installed=WITH_OPENVINO, backend="openvino", dtype="bfloat16")
    with pytest.raises(embedify.ConfigurationError, match=r"plugins/huggingface\[torch\]"):
        choose(flags=AVX2, installed=LIGHT, dtype="bfloat16")


def test_gpu_devices_and_float16_run_on_torch() -> None:
    for options in ({"device": "cuda"}, {"device": "cuda:1"}, {"device": "mps"}):
        assert choose(flags=AMX, installed=WITH_OPENVINO, **options).runtime == "torch"
    assert choose(flags=AVX2, installed=WITH_OPENVINO, dtype="float16").precision == "float16"
    assert choose(flags=AMX, installed=WITH_OPENVINO, device="cuda").precision == "float32"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "gpu"}, "'cuda'"),
        ({"backend": "openvino"}, r"pip install openvino"),
        ({"backend": "onnx", "device": "cuda"}, "runs on torch"),
        ({"backend": "onnx", "dtype": "bfloat16"}, "backend='openvino'"),
        ({"quantize": "int8", "dtype": "float32"}, "two precisions"),
        ({"quantize": "int8", "backend": "torch"}, "ONNX Runtime"),
        ({"device": "cuda"}, r"device='cuda' runs on torch, which is not installed: pip install"),
        ({"dtype": "float16"}, r"options runs on torch, which is not installed.*leave it out"),
    ],
)
def test_contradictions_fail_with_the_fix(options: dict[str, str], message: str) -> None:
    with pytest.raises(embedify.ConfigurationError, match=message):
        choose(flags=AVX2, installed=LIGHT, **options)


def test_cpu_flags_from_cpuinfo_and_a_safe_fallback(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()  # macOS, Windows: the float32 path
