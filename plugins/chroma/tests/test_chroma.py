"""EmbedifyEmbeddingFunction against a real chromadb.PersistentClient (telemetry off)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import ClassVar

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.errors import InvalidArgumentError
from embedify_chroma import EmbedifyEmbeddingFunction

import embedify

SETTINGS = Settings(anonymized_telemetry=False)
SUBJECTS = [
    "The cat",
    "A pilot",
    "My neighbour",
    "The orchestra",
    "A farmer",
    "The startup",
    "Our team",
    "The river",
    "A chef",
    "The senator",
]
VERBS = [
    "quietly watched",
    "repaired",
    "painted",
    "sold",
    "studied",
    "celebrated",
    "flooded",
    "cooked",
    "debated",
    "photographed",
]
OBJECTS = [
    "the old mill",
    "a red bicycle",
    "the harvest",
    "the new budget",
    "a mountain trail",
    "the stock market",
    "a jazz concert",
    "the village bridge",
    "a lemon tart",
    "the election results",
]
CORPUS = [f"{s} {v} {o}." for s, v, o in product(SUBJECTS, VERBS, OBJECTS)]  # 1,000 texts
QUESTIONS = [
    "Who cooked dessert?",
    "What happened to the shares?",
    "bridges over water",
    "music performance",
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[chromadb.ClientAPI]:
    with chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=SETTINGS) as client:
        yield client


def test_a_persisted_collection_answers_the_same_in_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    with chromadb.PersistentClient(path=str(path), settings=SETTINGS) as client:
        collection = client.create_collection(
            "corpus", embedding_function=EmbedifyEmbeddingFunction("local")
        )
        collection.add(ids=[str(i) for i in range(len(CORPUS))], documents=CORPUS)
        before = collection.query(query_texts=QUESTIONS, n_results=5)
    assert CORPUS.index(before["documents"][0][0]) == int(before["ids"][0][0])
    assert "cooked" in before["documents"][0][0]  # real retrieval, not noise

    # No embedding function passed: Chroma rebuilds ours from the collection's config.
    reopen = textwrap.dedent(
        f"""
        import json, chromadb, embedify_chroma
        from chromadb.config import Settings
        with chromadb.PersistentClient(path={str(path)!r},
                                       settings=Settings(anonymized_telemetry=False)) as client:
            collection = client.get_collection("corpus")
            result = collection.query(query_texts={QUESTIONS!r}, n_results=5)
            config = collection.configuration_json["embedding_function"]
        print(json.dumps({{"ids": result["ids"], "distances": result["distances"],
                          "config": config}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", reopen], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    after = json.loads(done.stdout.splitlines()[-1])
    assert after["config"]["name"] == "embedify_chroma"
    assert after["config"]["config"]["model"] == "local"
    assert after["ids"] == before["ids"]
    np.testing.assert_allclose(after["distances"], before["distances"], atol=1e-5)


def test_reopened_without_the_plugin_chromas_error_names_the_import(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    with chromadb.PersistentClient(path=str(path), settings=SETTINGS) as client:
        notes = client.create_collection(
            "notes", embedding_function=EmbedifyEmbeddingFunction("fake:8")
        )
        notes.add(ids=["cat"], documents=["the cat sat"])
    reopen = textwrap.dedent(
        f"""
        import sys, chromadb
        from chromadb.config import Settings
        {{import_line}}
        with chromadb.PersistentClient(path={str(path)!r},
                                       settings=Settings(anonymized_telemetry=False)) as client:
            found = client.get_collection("notes").query(query_texts=["cat"], n_results=1)
        assert ("embedify_chroma" in sys.modules) == {{imported}}
        print(found["ids"])
        """
    )

    def run(import_line: str, imported: bool) -> subprocess.CompletedProcess[str]:
        script = reopen.format(import_line=import_line, imported=imported)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    without = run("", imported=False)
    assert without.returncode == 1
    assert "Embedding function embedify_chroma not found" in without.stderr
    with_import = run("import embedify_chroma  # noqa: F401", imported=True)  # the documented fix
    assert with_import.returncode == 0, with_import.stderr
    assert with_import.stdout.strip() == "[['cat']]"


def test_documents_and_queries_are_embedded_with_their_roles(
    client: chromadb.ClientAPI,
) -> None:
    model = embedify.get_model("fake:16")  # its roles give different vectors
    collection = client.create_collection(
        "roles", embedding_function=EmbedifyEmbeddingFunction(model)
    )
    collection.add(ids=["a", "b"], documents=["the cat sat", "stocks fell"])
    stored = collection.get(ids=["a", "b"], include=["embeddings"])["embeddings"]
    np.testing.assert_allclose(stored, model.embed_documents(["the cat sat", "stocks fell"]))

    result = collection.query(query_texts=["the cat sat"], n_results=1)
    query, document = model.embed_query("the cat sat"), model.embed("the cat sat")
    assert result["ids"] == [["a"]]
    assert result["distances"][0][0] == pytest.approx(1 - float(query @ document), abs=1e-5)
    assert result["distances"][0][0] > 0.01  # a query-role vector, not the document's own


class CountingModel(embedify.EmbeddingModel):
    """The fake's vectors, with a small request limit; records each request and each job."""

    provider = "counting-chroma"
    capabilities = embedify.Capabilities(
        dimension=8, limits=embedify.Limits(max_inputs_per_request=64)
    )
    requests: ClassVar[list[int]] = []
    jobs: ClassVar[int] = 0

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        type(self).requests.append(len(texts))
        return embedify.get_model("fake:8").embed_batch(texts, role)

    async def aembed_with_report(
        self, texts: object, role: embedify.Role = "document"
    ) -> embedify.EmbeddingResult:
        type(self).jobs += 1
        return await super().aembed_with_report(texts, role)  # type: ignore[arg-type]


def test_an_add_is_one_engine_job_planned_by_the_model_limits(
    client: chromadb.ClientAPI,
) -> None:
    embedify.register_model("counting-chroma", CountingModel, default_model="v1")
    collection = client.create_collection(
        "planned", embedding_function=EmbedifyEmbeddingFunction("counting-chroma")
    )
    collection.add(ids=[str(i) for i in range(len(CORPUS))], documents=CORPUS)
    assert CountingModel.jobs == 1
    assert sum(CountingModel.requests) == len(CORPUS)
    assert max(CountingModel.requests) == 64


def test_config_round_trips_and_keeps_secrets_out() -> None:
    class Keyed(embedify.EmbeddingModel):
        provider = "keyed-chroma"
        capabilities = embedify.Capabilities(dimension=8)
        options_class = embedify.RemoteOptions

        def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
            return embedify.get_model("fake:8").embed_batch(texts, role)

    embedify.register_model("keyed-chroma", Keyed, default_model="v1")
    function = EmbedifyEmbeddingFunction("keyed-chroma", api_key="sk-secret-123", batch_size=7)
    config = function.get_config()
    assert "sk-secret" not in json.dumps(config)
    assert config["options"] == {"batch_size": 7}
    rebuilt = EmbedifyEmbeddingFunction.build_from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    assert rebuilt.model.options.batch_size == 7


def test_a_collection_of_other_dimensions_is_refused_as_chroma_does(
    client: chromadb.ClientAPI,
) -> None:
    collection = client.create_collection(
        "sixteen", embedding_function=EmbedifyEmbeddingFunction("fake:16")
    )
    collection.add(ids=["a"], documents=["the cat sat"])
    other = client.get_collection(
        "sixteen", embedding_function=EmbedifyEmbeddingFunction("fake:32", dimensions=8)
    )
    with pytest.raises(InvalidArgumentError, match="expecting embedding with dimension of 16"):
        other.query(query_texts=["cat"], n_results=1)
    # Chroma asks the function before it changes a collection's function.
    with pytest.raises(ValueError, match=r"holds vectors of fake:16@.*\(16 dimensions\)"):
        collection.modify(configuration={"embedding_function": EmbedifyEmbeddingFunction("fake:8")})


def test_a_persisted_config_that_now_gives_other_vectors_is_refused_or_warned() -> None:
    config = EmbedifyEmbeddingFunction("fake:16").get_config()
    with pytest.raises(ValueError, match="expects 8-dimensional vectors"):
        EmbedifyEmbeddingFunction.build_from_config({**config, "dimension": 8})
    with pytest.warns(UserWarning, match="now resolves to fake:16@"):
        EmbedifyEmbeddingFunction.build_from_config({**config, "fingerprint": "fake:16@old"})
    with pytest.raises(ValueError, match="'options' is missing"):
        EmbedifyEmbeddingFunction.build_from_config({"model": "fake:16"})


def test_bad_input_names_chromas_expectation() -> None:
    function = EmbedifyEmbeddingFunction("fake:8")
    with pytest.raises(TypeError, match=r"Documents, a list of str; wrap the one text"):
        function("one text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes at index 1"):
        function(["fine", b"\x89PNG"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not both"):
        EmbedifyEmbeddingFunction(embedify.get_model("fake:8"), dimensions=4)


def test_installs_and_imports_nothing_of_other_frameworks() -> None:
    requires = " ".join(importlib.metadata.requires("embedify-chroma") or [])
    assert not any(name in requires for name in ("haystack", "langchain", "llama"))
    check = "import sys, embedify; embedify.get_model('fake'); print('chromadb' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
