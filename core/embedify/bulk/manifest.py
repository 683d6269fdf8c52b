"""A bulk job's state, kept in its output folder so that a killed run resumes where it stopped.

Every stage is recorded before the next begins: a batch file is listed (``planned``) before it
is uploaded, its file id (``uploaded``) before a batch is created from it, the batch id
(``created``) before it is polled, and ``finished`` once its output and errors are stored. The
file is replaced whole (written aside, then renamed), so a kill -9 leaves the old state or the
new one, never half of either. The one gap, a crash after the provider created a batch and
before its id was recorded, is closed by asking the provider for the batch made from the
recorded file (:meth:`~embedify.bulk.api.BatchAPI.find`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from embedify.errors import ConfigurationError

BATCH_MANIFEST = "_embedify_batches.json"
Stage = Literal["planned", "uploaded", "created", "finished"]


@dataclass
class BatchRecord:
    """One input file and the batch made from it."""

    index: int
    requests: list[str]  # custom ids, in file order (line n holds requests[n - 1])
    stage: Stage = "planned"
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None  # the provider's word, when last seen
    failed: int = 0  # requests of this batch that came back without vectors


@dataclass
class Manifest:
    path: Path
    batches: list[BatchRecord] = field(default_factory=list)
    online: list[str] = field(default_factory=list)  # requests embedded online instead
    #: The width of every kept result: the batch API's, else learned from the first answer kept
    #: (recorded so that a rerun judges new answers as the first run did).
    dimension: int | None = None

    @classmethod
    def open(cls, folder: Path) -> Manifest:
        """The folder's manifest, or an empty one (nothing is written until :meth:`save`)."""
        path = folder / BATCH_MANIFEST
        if not path.exists():
            return cls(path)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            batches = [BatchRecord(**record) for record in data["batches"]]
            width = data.get("dimension")  # absent in the folders of older versions
            return cls(path, batches, list(data["online"]), None if width is None else int(width))
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(
                f"{path} is damaged ({error}); its batches cannot be followed. Delete the "
                "folder to start over (batches already sent are then paid for again)."
            ) from None

    def save(self) -> None:
        data = {
            "batches": [asdict(record) for record in self.batches],
            "online": self.online,
            "dimension": self.dimension,
        }
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("w") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    def attempts(self) -> dict[str, int]:
        """How many batches each request was sent in."""
        counts: dict[str, int] = {}
        for record in self.batches:
            for custom_id in record.requests:
                counts[custom_id] = counts.get(custom_id, 0) + 1
        return counts
