"""``local:<model>``: sentence-transformers folders and Hugging Face ids, run locally.

By default the transformer runs on the CPU from an ONNX graph written once into the user cache
straight from the safetensors weights (:mod:`embedify_huggingface.graph`; a folder that already
holds ``model.onnx`` runs as it is): no torch. The runtime and precision are chosen when the
model is built (:mod:`embedify_huggingface.choice`): OpenVINO bfloat16 on CPUs with bf16
instructions, else the fastest float32 runtime installed; torch for GPU devices, float16 or
``backend="torch"`` (the ``[torch]`` extra). Tokenization, pooling, Dense and Normalize follow
the folder's own configuration.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

import embedify
from embedify.errors import ConfigurationError
from embedify_huggingface import choice
from embedify_huggingface.folder import ModelFolder, locate, read_folder
from embedify_huggingface.head import Array, TextTokenizer, pool

#: Role prompts for well-known families whose folders do not carry their own ``prompts``.
KNOWN_PROMPTS: list[tuple[str, dict[str, str]]] = [
    (r"bge-.*-en", {"query": "Represent this sentence for searching relevant passages: "}),
    (r"bge-.*-zh", {"query": "为这个句子生成表示以用于检索相关文章："}),
    (
        r"(^|/)(multilingual-)?e5-",
        {
            "query": "query: ",
            "document": "passage: ",
            "classification": "query: ",
            "clustering": "query: ",
        },
    ),
    (
        r"nomic-embed-text",
        {
            "query": "search_query: ",
            "document": "search_document: ",
            "classification": "classification: ",
            "clustering": "clustering: ",
        },
    ),
    (r"mxbai-embed", {"query": "Represent this sentence for searching relevant passages: "}),
]
INT8_FILE = "model_int8.onnx"  # what `embedify export onnx --quantize int8` adds
_ROLE_SYNONYMS = {
    "document": ("document", "passage", "corpus"),
    "query": ("query",),
    "classification": ("classification",),
    "clustering": ("clustering",),
}


class LocalOptions(embedify.ModelOptions):
    backend: Literal["auto", "onnx", "openvino", "torch"] = Field(
        "auto",
        description="auto: chosen for the CPU (OpenVINO where installed, else ONNX Runtime), "
        "torch for a GPU device or float16.",
    )
    device: str = Field("auto", description="auto (CPU), cpu, cuda, cuda:1, mps (torch).")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="auto: bfloat16 on CPUs with AMX or AVX512-BF16 when OpenVINO is installed, "
        "else float32; float32 forces exact float32.",
    )
    quantize: Literal["int8"] | None = Field(None, description="ONNX int8 fast path (opt-in).")
    prompts: dict[str, str] | None = Field(None, description="Role -> prompt, over the defaults.")
    revision: str | None = Field(None, description="Hub revision to load.")
    trust_remote_code: bool = False
    threads: int | None = Field(
        None, gt=0, description="Intra-op threads (ONNX Runtime, OpenVINO); default: all cores."
    )

    @field_validator("prompts")
    @classmethod
    def _known_roles(cls, prompts: dict[str, str] | None) -> dict[str, str] | None:
        """A misspelt role would otherwise be ignored until its vectors looked wrong."""
        unknown = sorted(set(prompts or {}) - set(_ROLE_SYNONYMS))
        if unknown:
            raise ValueError(
                f"prompts for unknown roles {unknown}; the roles are {', '.join(_ROLE_SYNONYMS)}"
            )
        return prompts

    max_tokens_per_batch: int = Field(
        1_024,
        gt=0,
        description="Token budget of one batch (at least max_seq_length): small batches keep "
        "attention scores in the CPU caches, which beat 16,384-token batches on long passages.",
    )


class LocalEmbeddingModel(embedify.EmbeddingModel):
    provider = "local"
    default_model_id = "sentence-transformers/all-MiniLM-L6-v2"
    options_class = LocalOptions
    options: LocalOptions
    capabilities = embedify.Capabilities(truncates=True, exact_tokens=True, max_concurrency=1)

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        located = locate(self.model_id, self.options.revision)
        if located.source == "folder":
            self.model_id = str(located.path)  # the real path: a symlink or "./x" is one model
        #: Where the folder came from: "folder", "Hugging Face cache" or the pack's distribution.
        self.source = located.source
        self.folder: ModelFolder = read_folder(located.path)
        self.revision = self.folder.revision()
        self.tokenizer = TextTokenizer(
            self.folder, truncate_from_start=self.options.truncate == "start"
        )
        self.prompts = self._role_prompts()
        #: The runtime and precision, and why (``embedify models --verbose`` shows it).
        self.runtime_choice = choice.choose(
            flags=choice.cpu_flags(),
            installed=choice.installed_runtimes(),
            backend=self.options.backend,
            device=self.options.device,
            dtype=self.options.dtype,
            quantize=self.options.quantize,
            exported_int8=(self.folder.path / INT8_FILE).exists(),
            trust_remote_code=self.options.trust_remote_code,
        )
        self.compute = self.runtime_choice.compute
        self._loaded: dict[str, Any] = {}  # the runtime, shared with with_prompts() views
        self._lock = threading.Lock()

    def configure(self) -> embedify.Capabilities:
        """The folder's dimension, normalization and sequence length, and the role prompts;
        the chosen runtime is checked here, so a model that cannot run fails when built."""
        self._check_runtime()
        return replace(
            self.capabilities,
            dimension=self.folder.dimension,
            normalized=self.folder.normalize,
            limits=embedify.Limits(
                max_inputs_per_request=self.options.batch_size or 64,
                max_tokens_per_request=max(
                    self.options.max_tokens_per_batch, self.folder.max_seq_length
                ),
                max_tokens_per_input=self.folder.max_seq_length,
            ),
            roles=_described(self.prompts),
        )

    def details(self) -> dict[str, str]:
        """For ``embedify models --verbose``: the folder the weights are read from, and the
        runtime and precision chosen for this CPU, with the reason."""
        return {
            "weights": f"{self.folder.path} ({self.source})",
            "runtime": str(self.runtime_choice),
        }

    def _check_runtime(self) -> None:
        """Fail now, not at the first embed, where the chosen runtime cannot run here: a GPU
        that is absent, an architecture with no ONNX graph, int8 without its quantizer."""
        from embedify_huggingface import runtime
        from embedify_huggingface.export import cache_folder

        if self.runtime_choice.runtime == "torch":
            if self.options.device != "auto":
                runtime.resolve_device(self.options.device)
            return
        if self.runtime_choice.precision == "int8":
            if (self.folder.path / INT8_FILE).exists():
                return
            if not (cache_folder(self.folder) / INT8_FILE).exists() and not (
                importlib.util.find_spec("onnx")
            ):
                raise ConfigurationError(
                    f"quantize='int8' needs the onnx package: {choice.QUANTIZE_HINT}"
                )
        elif self.folder.onnx_file is None:
            cache_folder(self.folder)  # raises for an architecture that has no ONNX path here

    def with_prompts(self, prompts: dict[str, str]) -> LocalEmbeddingModel:
        """This model with other prompts for some roles, e.g. for one call:
        ``model.with_prompts({"query": "Represent the Biology question: "}).embed_query(q)``.
        The weights are shared, not loaded again; the fingerprint (cache key) changes."""
        view = copy.copy(self)
        view.options = self.options.model_copy(
            update={"prompts": {**(self.options.prompts or {}), **prompts}}
        )
        view.prompts = {**self.prompts, **prompts}
        view.capabilities = replace(self.capabilities, roles=_described(view.prompts))
        return view

    def _role_prompts(self) -> dict[str, str]:
        prompts = dict.fromkeys(_ROLE_SYNONYMS, "")
        known = self.folder.prompts
        if not known:
            for pattern, table in KNOWN_PROMPTS:
                if re.search(pattern, self.model_id, re.IGNORECASE):
                    known = table
                    break
        for role, names in _ROLE_SYNONYMS.items():
            prompts[role] = next((known[name] for name in names if known.get(name)), "")
        prompts.update(self.options.prompts or {})
        return prompts

    def runtime(self) -> Any:
        """Load the transformer on first use (thread-safe)."""
        with self._lock:
            if "runtime" not in self._loaded:
                self._loaded["runtime"] = self._load_runtime()
        return self._loaded["runtime"]

    def _load_runtime(self) -> Any:
        from embedify_huggingface import runtime

        chosen = self.runtime_choice
        if chosen.runtime == "torch":
            return runtime.TorchRuntime(
                self.folder.path,
                device=runtime.resolve_device(self.options.device),
                dtype=chosen.precision,
                trust_remote_code=self.options.trust_remote_code,
            )
        onnx_file = self._onnx_file(int8=chosen.precision == "int8")
        if chosen.runtime == "openvino":
            return runtime.OpenVinoRuntime(
                onnx_file, chosen.precision, threads=self.options.threads
            )
        return runtime.OnnxRuntime(onnx_file, threads=self.options.threads)

    def _onnx_file(self, *, int8: bool) -> Path:
        """The folder's own graph where it has one (an export folder runs what was exported),
        else the graph built once into the user cache."""
        own = self.folder.path / INT8_FILE if int8 else self.folder.onnx_file
        if own is not None and own.exists():
            return own
        from embedify_huggingface.export import cached_export

        exported = cached_export(self.folder, "int8" if int8 else None, name=self.model_id)
        return exported / (INT8_FILE if int8 else "model.onnx")

    def embed_batch(self, texts: list[str], role: embedify.Role) -> Array:
        prompt = self.prompts.get(role, "")
        batch = self.tokenizer.encode(texts, prompt)
        token_embeddings = self.runtime().token_embeddings(batch)
        return pool(self.folder, token_embeddings, batch.pooling_mask)

    def count_tokens(self, texts: Any) -> list[int]:
        return self.tokenizer.count(texts)

    def truncate_text(self, text: str, max_tokens: int, side: Literal["end", "start"]) -> str:
        return self.tokenizer.truncate(text, max_tokens, from_start=side == "start")


def _described(prompts: dict[str, str]) -> dict[str, str]:
    """How each role is sent, for ``info.roles`` (and so the fingerprint)."""
    return {
        role: f"prompt {prompt!r}" if prompt else "no prompt" for role, prompt in prompts.items()
    }
