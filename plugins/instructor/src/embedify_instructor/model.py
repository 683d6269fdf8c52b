"""Instructor: a T5 encoder whose input is an instruction followed by the text, mean-pooled over
the text tokens only, then the folder's Dense and Normalize modules.

Built on the local provider (so ONNX Runtime or torch, current transformers), not on the
``InstructorEmbedding`` package, which only works with sentence-transformers 2.2.2. Roles map to
instructions; ``instruction=`` sets one for every role (the LlamaIndex example's usage) and
``prompts=`` sets them per role.
"""

from __future__ import annotations

from typing import Any

from embedify_huggingface.model import LocalEmbeddingModel, LocalOptions
from pydantic import Field

DEFAULT_INSTRUCTIONS = {
    "document": "Represent the document for retrieval: ",
    "query": "Represent the question for retrieving supporting documents: ",
    "classification": "Represent the text for classification: ",
    "clustering": "Represent the text for clustering: ",
}


class InstructorOptions(LocalOptions):
    instruction: str | None = Field(
        None, description="One instruction for every role, e.g. 'Represent the Science title: '."
    )


class InstructorEmbeddingModel(LocalEmbeddingModel):
    provider = "instructor"
    default_model_id = "hkunlp/instructor-large"
    options_class = InstructorOptions
    options: InstructorOptions

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.folder.include_prompt = False  # pool the text, not the instruction

    def _role_prompts(self) -> dict[str, str]:
        if self.options.instruction is not None:
            prompts = dict.fromkeys(DEFAULT_INSTRUCTIONS, self.options.instruction)
        else:
            prompts = dict(DEFAULT_INSTRUCTIONS)
        prompts.update(self.options.prompts or {})
        return prompts
