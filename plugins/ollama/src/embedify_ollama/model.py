"""``ollama:<model>``: an Ollama server's ``POST /api/embed`` over httpx, on :mod:`embedify.http`.

Wire facts (https://github.com/ollama/ollama/blob/main/docs/api.md#generate-embeddings and
``server/routes.go`` ``EmbedHandler``): the body is ``{model, input: [...], truncate, dimensions,
keep_alive, options}``; the answer ``{model, embeddings: [[...]], total_duration, load_duration,
prompt_eval_count}`` holds one unit-length vector per input, in input order, without an index.
``truncate`` (default true) cuts each input's end to the context; false answers 400 "the input
length exceeds the context length". ``dimensions`` (Ollama >= 0.11.11; older servers ignore it)
cuts each vector and normalises it again. Errors are ``{"error": "..."}``
(https://docs.ollama.com/api/errors): 404 "model 'x' not found" for a model not pulled, 400 bad
request, 503 "server busy ... maximum pending requests exceeded" when the queue
(``OLLAMA_MAX_QUEUE``, 512) is full, 429 on ollama.com. No key locally; ollama.com's API takes
``Authorization: Bearer $OLLAMA_API_KEY`` (https://docs.ollama.com/api/authentication).

Limits are the server's: the context per model (the GGUF's, capped by ``num_ctx``) is declared
where known; the API documents no number of inputs per request (the server embeds them all at
once), so 32 keeps a request on a CPU well inside the 60 s timeout. Ollama has no "too many
inputs" error; a proxy's 413 still splits. Roles are the models' documented prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

import embedify
from embedify import errors
from embedify.http import ErrorResponse
from embedify.responses import vector_matrix

NOMIC = {  # https://huggingface.co/nomic-ai/nomic-embed-text-v1.5#usage
    "query": "search_query: ",
    "document": "search_document: ",
    "classification": "classification: ",
    "clustering": "clustering: ",
}
RETRIEVAL_QUERY = {"query": "Represent this sentence for searching relevant passages: "}
GEMMA = {  # https://ai.google.dev/gemma/docs/embeddinggemma/model_card#prompt-instructions
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "classification": "task: classification | query: ",
    "clustering": "task: clustering | query: ",
}


@dataclass(frozen=True)
class Known:
    dimension: int
    context: int  # tokens per input, as the model's GGUF in the Ollama library declares
    matryoshka: bool
    prompts: dict[str, str] = field(default_factory=dict)


KNOWN_MODELS = {  # https://ollama.com/library/<name>; context 2048 for nomic: ollama#11214
    "nomic-embed-text": Known(768, 2048, True, NOMIC),
    "mxbai-embed-large": Known(1024, 512, True, RETRIEVAL_QUERY),  # mixedbread: MRL
    "all-minilm": Known(384, 512, False),
    "snowflake-arctic-embed": Known(1024, 512, False, RETRIEVAL_QUERY),  # the 335m tag
    "embeddinggemma": Known(768, 2048, True, GEMMA),
    "bge-m3": Known(1024, 8192, False),
}
MAX_INPUTS_PER_REQUEST = 32
DEFAULT_PORT = 11434


class OllamaOptions(embedify.HTTPOptions):
    prompts: dict[str, str] | None = Field(
        None, description="Role -> text put before each input, over the model's prefixes."
    )
    keep_alive: str | float | None = Field(
        None,
        description="How long the model stays loaded after a request ('5m', seconds; 0 "
        "unloads it, negative keeps it); None: the server's default (5m).",
    )
    model_options: dict[str, Any] | None = Field(
        None, description="Ollama's runtime `options` (Modelfile parameters, e.g. num_ctx)."
    )


class OllamaEmbeddingModel(embedify.HTTPEmbeddingModel):
    provider = "ollama"
    default_model_id = "nomic-embed-text"
    options_class = OllamaOptions
    options: OllamaOptions
    capabilities = embedify.Capabilities(
        normalized=True,  # the server normalises every vector
        max_concurrency=2,  # a local server, often on a CPU: more requests only queue
    )
    default_base_url = f"http://localhost:{DEFAULT_PORT}"
    version_paths = ("/api", "/v1")  # the native routes' prefix, and the OpenAI-compatible one
    api_key_variables = ("OLLAMA_API_KEY",)
    api_key_required = False  # a bearer key is sent only when given (ollama.com, proxies)

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        family = KNOWN_MODELS.get(self.model_id.partition(":")[0])  # another tag: same prompts
        self.prompts = {**(family.prompts if family else {}), **(self.options.prompts or {})}

    def configure(self) -> embedify.Capabilities:
        if self.options.normalize is False:
            raise errors.ConfigurationError(
                "ollama returns unit-length vectors only; drop normalize=False."
            )
        known = KNOWN_MODELS.get(self.model_id.removesuffix(":latest"))
        context = known.context if known else None
        num_ctx = (self.options.model_options or {}).get("num_ctx")
        if isinstance(num_ctx, int) and num_ctx > 0:  # the server takes the smaller
            context = min(context or num_ctx, num_ctx)
        prefix_tokens = max(self.count_tokens(list(self.prompts.values())), default=0)
        return replace(
            self.capabilities,
            dimension=known.dimension if known else None,
            # Sent to the server; an unknown model: the user's call.
            dimensions_mode="native" if known is None or known.matryoshka else "fixed",
            limits=embedify.Limits(
                max_inputs_per_request=MAX_INPUTS_PER_REQUEST,
                max_tokens_per_input=max(1, context - prefix_tokens) if context else None,
            ),
            roles={
                role: f"prefix {self.prompts[role]!r}" if self.prompts.get(role) else "no prefix"
                for role in ("document", "query", *self.prompts)
            },
            truncates=self.options.truncate == "end",  # start: cut here
        )

    def configured_base_url(self) -> str | None:
        """The option, else ``OLLAMA_HOST`` as Ollama reads it, else ``localhost:11434``."""
        from os import environ

        host = environ.get("OLLAMA_HOST", "").strip()
        return self.options.base_url or (ollama_host_url(host) if host else self.default_base_url)

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        prefix = self.prompts.get(role, "")
        body: dict[str, Any] = {
            "model": self.model_id,
            "input": [prefix + text for text in texts],
            "truncate": self.options.truncate == "end",
        }
        if self.options.dimensions is not None:
            body["dimensions"] = self.options.dimensions
        if self.options.keep_alive is not None:
            body["keep_alive"] = self.options.keep_alive
        if self.options.model_options:
            body["options"] = self.options.model_options
        answer = await self.request_json("POST", "/api/embed", body)
        rows = answer.get("embeddings") if isinstance(answer, dict) else None
        vectors = vector_matrix(rows, len(texts), source=repr(self))
        wanted = self.options.dimensions
        if wanted is not None and texts and vectors.shape[1] != wanted:
            raise errors.BadResponseError(
                f"{self!r} returned {vectors.shape[1]} values per vector for dimensions={wanted}:"
                " Ollama reads dimensions from 0.11.11 on; upgrade the server or drop the option."
            )
        return vectors

    def refine_error(self, response: ErrorResponse) -> errors.EmbedifyError | None:
        """Ollama's ``error`` texts: a model not pulled, a too-long input, a full queue."""
        status, message, text = response.status, response.message, response.text
        if status == 404 and _NOT_FOUND.search(message):
            return errors.ModelNotFoundError(
                f"{text}: pull it on the server first (ollama pull {self.model_id})",
                status=status,
            )
        if _TOO_LONG.search(message):
            return errors.InputTooLongError(text, status=status)
        if "maximum pending requests exceeded" in message:
            return errors.RateLimitError(text, status=status)
        return None


_NOT_FOUND = re.compile(r"model .* not found")
_TOO_LONG = re.compile(r"input length exceeds the context length|exceeds maximum context length")


def ollama_host_url(value: str) -> str:
    """``OLLAMA_HOST`` as Ollama's own clients read it (``envconfig.Host`` and
    ``ConnectableHost``): the scheme defaults to http, and the port to 11434 without a scheme;
    no host is 127.0.0.1, and a bind-all address (0.0.0.0, ::) is the loopback one;
    ``ollama.com`` alone is https."""
    if value == "ollama.com":
        return "https://ollama.com"
    scheme, separator, rest = value.partition("://")
    if not separator:
        scheme, rest = "http", value
    hostport, slash, path = rest.partition("/")
    parts = urlsplit(f"//{hostport}")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(parts.hostname or "", parts.hostname)
    try:
        port = parts.port
    except ValueError:  # Ollama warns and takes the default
        port = None
    if port is None and not separator:
        port = DEFAULT_PORT
    host = f"[{host}]" if host and ":" in host else (host or "127.0.0.1")
    return f"{scheme}://{host}{f':{port}' if port else ''}{slash}{path}"
