"""embedify plugin: Instructor models (``instructor:hkunlp/instructor-large``). Light on purpose."""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    register(
        "instructor",
        "embedify_instructor.model:InstructorEmbeddingModel",
        default_model="hkunlp/instructor-large",
        models=["hkunlp/instructor-base", "hkunlp/instructor-large", "hkunlp/instructor-xl"],
    )
