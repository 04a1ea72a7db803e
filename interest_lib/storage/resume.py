"""Resume a job that rebuilds derived tables, after a kill or a failure, where it stopped.

A job that recomputes tables from its inputs (featurize: windows, migrations, flows, stages,
vocabulary, sequences) names the inputs of this run by a key: the versions of the tables it
reads, its settings and the code (:func:`source_fingerprint`). Each table is written with an app
transaction of that key (``<job>-<key>``, version = the table version the write will produce).
A rerun with the same key keeps a table whose newest commit is that transaction and recomputes
the rest; a changed input, setting or line of code is another key, so everything is rebuilt. A
table another writer has committed to since is not the run's output any more and is rebuilt too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache

from interest_lib.storage.engine import Txn
from interest_lib.storage.tables import Tables

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """SHA-256 of the package's Python sources (paths and bytes): changes with any code change,
    committed or not (a git commit id would not see an edited working tree)."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, _PACKAGE).encode())
            with open(path, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()


@dataclass(frozen=True)
class Resume:
    """Which of a job's output tables a rerun with the same inputs may keep."""

    tables: Tables
    app_id: str

    @classmethod
    def for_inputs(cls, tables: Tables, job: str, inputs: dict) -> "Resume":
        """The resume state of ``job`` for ``inputs`` (JSON-able: table versions, settings);
        the package's source fingerprint is added to them."""
        text = json.dumps({"inputs": inputs, "code": source_fingerprint()}, sort_keys=True, default=str)
        return cls(tables, f"{job}-{hashlib.sha256(text.encode()).hexdigest()[:20]}")

    def done(self, name: str) -> bool:
        """True when ``name``'s newest commit is this run's write (same inputs, same code)."""
        if not self.tables.exists(name):
            return False
        return self.tables.txn_version(name, self.app_id) == self.tables.version(name)

    def txn(self, name: str) -> Txn:
        """The app transaction for writing ``name`` now: its version is the table version the
        write produces, so :meth:`done` holds after it and no earlier commit of the same key
        makes the write look already done."""
        return Txn(self.app_id, self.tables.version_or_missing(name) + 1)
