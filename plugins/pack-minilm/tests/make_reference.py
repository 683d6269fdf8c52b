"""Write reference_vectors.json: all-MiniLM-L6-v2 vectors from sentence-transformers itself.

Run in the test environment (it has sentence-transformers and torch):
``python plugins/pack-minilm/tests/make_reference.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from embedify_pack_minilm import model_folder
from sentence_transformers import SentenceTransformer

TEXTS = [
    "A man is eating food.",
    "The quarterly revenue grew by twelve percent.",
    "Photosynthesis turns light into chemical energy.",
    "naïve café in 日本語 🙂",
    "How do I read a file line by line in Python?",
    "short",
]


def main() -> None:
    model = SentenceTransformer(str(model_folder()), device="cpu")
    vectors = model.encode(TEXTS, convert_to_numpy=True)
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_with": "sentence-transformers (see make_reference.py)",
        "texts": TEXTS,
        "vectors": [[round(float(x), 7) for x in row] for row in vectors],
    }
    (Path(__file__).parent / "reference_vectors.json").write_text(json.dumps(data) + "\n")


if __name__ == "__main__":
    main()
