"""``local:<model>``: sentence-transformers folders and Hugging Face ids, run locally.

By default the transformer runs in ONNX Runtime on CPU, from a graph written once into the user
cache straight from the safetensors weights (:mod:`embedify_huggingface.graph`; a folder that
already holds ``model.onnx`` runs as it is): no torch. With ``device="cuda"``/``"mps"``,
``dtype="bfloat16"``/``"float16"`` or ``backend="torch"`` it runs in torch (the ``[torch]``
extra). Tokenization, pooling, Dense and Normalize follow the folder's own configuration.
"""

from __future__ import annotations

import copy
import re
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

import embedify
from embedify.errors import ConfigurationError
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
_ROLE_SYNONYMS = {
    "document": ("document", "passage", "corpus"),
    "query": ("query",),
    "classification": ("classification",),
    "clustering": ("clustering",),
}


class LocalOptions(embedify.ModelOptions):
    backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="auto: ONNX Runtime, or torch for a GPU device or a 16-bit dtype."
    )
    device: str = Field("auto", description="auto (CPU), cpu, cuda, cuda:1, mps (torch).")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="16-bit dtypes run on torch (bfloat16 on CPUs with AVX512-BF16)."
    )
    quantize: Literal["int8"] | None = Field(None, description="ONNX int8 fast path (opt-in).")
    prompts: dict[str, str] | None = Field(None, description="Role -> prompt, over the defaults.")
    revision: str | None = Field(None, description="Hub revision to load.")
    trust_remote_code: bool = False
    threads: int | None = Field(None, gt=0, description="ONNX Runtime intra-op threads.")
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
    default_max_concurrency = 1
    truncates_natively = True
    exact_token_count = True

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        path = locate(self.model_id, self.options.revision)
        if Path(self.model_id).expanduser().is_dir():
            self.model_id = str(path)  # the real path: a symlink or "./x" names the same model
        self.folder: ModelFolder = read_folder(path)
        self.revision = self.folder.revision()
        self.dimension = self.folder.dimension
        self.normalized = self.folder.normalize
        self.tokenizer = TextTokenizer(
            self.folder, truncate_from_start=self.options.truncate == "start"
        )
        self._use_prompts(self._role_prompts())
        self.limits = embedify.Limits(
            max_inputs_per_request=self.options.batch_size or 64,
            max_tokens_per_request=max(
                self.options.max_tokens_per_batch, self.folder.max_seq_length
            ),
            max_tokens_per_input=self.folder.max_seq_length,
        )
        self._loaded: dict[str, Any] = {}  # the runtime, shared with with_prompts() views
        self._lock = threading.Lock()

    def _use_prompts(self, prompts: dict[str, str]) -> None:
        self.prompts = prompts
        self.role_mapping = {
            role: f"prompt {prompt!r}" if prompt else "no prompt"
            for role, prompt in prompts.items()
        }

    def with_prompts(self, prompts: dict[str, str]) -> LocalEmbeddingModel:
        """This model with other prompts for some roles, e.g. for one call:
        ``model.with_prompts({"query": "Represent the Biology question: "}).embed_query(q)``.
        The weights are shared, not loaded again; the fingerprint (cache key) changes."""
        view = copy.copy(self)
        view.options = self.options.model_copy(
            update={"prompts": {**(self.options.prompts or {}), **prompts}}
        )
        view._use_prompts({**self.prompts, **prompts})
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

    @property
    def backend(self) -> str:
        """The runtime this model uses: ``onnx`` or ``torch`` (decided without importing torch)."""
        choice = self.options.backend
        if choice != "auto":
            return choice
        wants_torch = self.options.device not in ("auto", "cpu") or self.options.dtype != "float32"
        return "torch" if wants_torch else "onnx"

    def runtime(self) -> Any:
        """Load the transformer on first use (thread-safe)."""
        with self._lock:
            if "runtime" not in self._loaded:
                self._loaded["runtime"] = self._load_runtime()
        return self._loaded["runtime"]

    def _load_runtime(self) -> Any:
        from embedify_huggingface import runtime

        if self.backend == "torch":
            device = runtime.resolve_device(self.options.device)
            return runtime.TorchRuntime(
                self.folder.path,
                device=device,
                dtype=self.options.dtype,
                trust_remote_code=self.options.trust_remote_code,
            )
        onnx_folder = self.folder.path
        file_name = "model_int8.onnx" if self.options.quantize == "int8" else "model.onnx"
        has_file = self.folder.onnx_file is not None and (
            self.options.quantize is None or (onnx_folder / file_name).exists()
        )
        if not has_file:
            if self.options.trust_remote_code:
                raise ConfigurationError("models with remote code run with backend='torch' only")
            from embedify_huggingface.export import cached_export

            onnx_folder = cached_export(self.folder, self.options.quantize, name=self.model_id)
        onnx_file = onnx_folder / file_name
        if not onnx_file.exists() and self.folder.onnx_file is not None:
            onnx_file = self.folder.onnx_file
        return runtime.OnnxRuntime(onnx_file, threads=self.options.threads)

    def embed_batch(self, texts: list[str], role: embedify.Role) -> Array:
        prompt = self.prompts.get(role, "")
        batch = self.tokenizer.encode(texts, prompt)
        token_embeddings = self.runtime().token_embeddings(batch)
        return pool(self.folder, token_embeddings, batch.pooling_mask)

    def count_tokens(self, texts: Any) -> list[int]:
        return self.tokenizer.count(texts)

    def truncate_text(self, text: str, max_tokens: int, side: Literal["end", "start"]) -> str:
        return self.tokenizer.truncate(text, max_tokens, from_start=side == "start")
