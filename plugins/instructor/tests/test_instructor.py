"""Instructor on a tiny random T5 in the Instructor folder layout, against sentence-transformers'
native Instructor support (prompt= with the prompt excluded from pooling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tiny_models

import embedify
from embedify.testing import ConformanceSuite

SEED_INSTRUCTION = "Represent the Computer Science documentation or question: "
TEXTS = ["what is rain", "it is raining cats and dogs here", "computer science question"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("instructor")
    t5 = tiny_models.t5(root / "t5")
    return tiny_models.sentence_transformer_folder(
        t5, root / "instructor-tiny", pooling="mean", dense=16, normalize=True, include_prompt=False
    )


def reference(folder: Path, texts: list[str], prompt: str) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    model.set_pooling_include_prompt(False)  # a local path is not recognised as Instructor
    return model.encode(texts, prompt=prompt)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_seed_instruction_equals_sentence_transformers(folder: Path, backend: str) -> None:
    model = embedify.get_model(
        f"instructor:{folder}", instruction=SEED_INSTRUCTION, backend=backend
    )
    ours = model.embed(TEXTS, "query")
    assert cosine_rows(ours, reference(folder, TEXTS, SEED_INSTRUCTION)).min() >= 0.99999


def test_roles_use_retrieval_instructions_and_exclude_them_from_pooling(folder: Path) -> None:
    model = embedify.get_model(f"instructor:{folder}")
    query = model.embed(TEXTS, "query")
    document = model.embed(TEXTS, "document")
    assert cosine_rows(query, reference(folder, TEXTS, model.prompts["query"])).min() >= 0.99999
    assert (
        cosine_rows(document, reference(folder, TEXTS, model.prompts["document"])).min() >= 0.99999
    )
    assert model.info.roles["query"].startswith("prompt 'Represent the question")
    included = embedify.get_model(f"local:{folder}", prompts={"query": model.prompts["query"]})
    included.folder.include_prompt = True
    assert cosine_rows(query, included.embed(TEXTS, "query")).min() < 0.9999


def test_per_role_override(folder: Path) -> None:
    model = embedify.get_model(
        f"instructor:{folder}", prompts={"query": "Represent the Biology question: "}
    )
    assert model.prompts["query"] == "Represent the Biology question: "
    assert model.prompts["document"].startswith("Represent the document")


class TestInstructorConformance(ConformanceSuite):
    @pytest.fixture
    def make_model(self, folder: Path):  # type: ignore[no-untyped-def]
        return lambda **options: embedify.get_model(f"instructor:{folder}", **options)

    @pytest.fixture
    def error_cases(self, folder: Path):  # type: ignore[no-untyped-def]
        strict = embedify.get_model(f"instructor:{folder}", truncate="error")
        return [(lambda: strict.embed(["dog " * 100]), embedify.InputTooLongError)]


def test_per_call_instruction_shares_the_weights(folder: Path) -> None:
    model = embedify.get_model(f"instructor:{folder}", instruction=SEED_INSTRUCTION)
    biology = "Represent the Biology sentence: "
    view = model.with_prompts({"query": biology})
    ours = view.embed(TEXTS, "query")
    assert cosine_rows(ours, reference(folder, TEXTS, biology)).min() >= 0.99999
    assert view.runtime() is model.runtime()  # loaded once
    assert model.prompts["query"] == SEED_INSTRUCTION  # the model itself is unchanged
    assert view.info.fingerprint() != model.info.fingerprint()
