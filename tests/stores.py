"""Generated stores shared by the integration, cluster and card tests, cached by their settings.

A *generated store* is what ``interest generate`` writes: the raw files (``raw/events``,
``raw/items``) and the planted truth (``warehouse/ref/planted_migrations``). Generation is
deterministic (seed + sizes, whatever the partitioning), so a store is generated once per key and
copied to each test that asks for it; a test owns its copy (ingest, featurize, ... write into its
warehouse), and a file copy of a few MB costs far less than a generate job.

The key hashes the resolved ``generate`` settings, the code that generates and writes (the
generate and storage packages, schema.py, the conf package) and the library versions that could change a
byte of the output. Entries live under ``$INTEREST_TEST_CACHE`` (default
``~/.cache/interest-evolution/test-stores``, beside the horovod wheel cache) so a later run, or CI
on the same machine, reuses them; ``INTEREST_TEST_CACHE=off`` keeps them in the run's temp folder
(one generation per key per pytest run). Entries unused for 14 days are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
CODE = ("interest_lib/generate", "interest_lib/storage", "interest_lib/schema.py", "interest_lib/conf",
        "conf/base.yml", "conf/local.yml")
LIBRARIES = ("numpy", "pandas", "pyarrow", "pyspark", "deltalake", "delta-spark")
MAX_AGE_S = 14 * 24 * 3600


def cache_root(session_tmp: Path) -> Path:
    """Where entries live: $INTEREST_TEST_CACHE, ~/.cache/..., or the run's temp folder (off)."""
    where = os.environ.get("INTEREST_TEST_CACHE", "")
    if where.lower() in ("off", "0", "no", "false"):
        return session_tmp / "generated-stores"
    if where:
        return Path(where).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "interest-evolution" / "test-stores"


def _code_hash() -> str:
    digest = hashlib.sha256()
    for entry in CODE:
        path = REPO / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            if f.is_file():
                digest.update(str(f.relative_to(REPO)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def store_key(settings: Sequence[str]) -> tuple[str, dict]:
    """(key, description) of the store that ``settings`` (``--set`` strings) generate."""
    from interest_lib.conf import load_config

    conf = load_config(overrides=list(settings))
    described = {"generate": conf.to_dict()["generate"], "code": _code_hash(), "versions": _versions()}
    key = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    return key, described


class GeneratedStores:
    """The session's generated stores: ``copy_to(settings, root)`` gives a test its own copy."""

    def __init__(self, spark, root: Path):
        self.spark, self.root = spark, root
        self.made: dict[str, Path] = {}  # key -> entry generated or found in this run
        self._prune()

    def _prune(self) -> None:
        if not self.root.is_dir():
            return
        now = time.time()
        for entry in self.root.iterdir():
            try:
                stale = now - entry.stat().st_mtime > MAX_AGE_S
                if entry.name.startswith(".tmp-") and now - entry.stat().st_mtime > 3600:
                    stale = True
                if stale:
                    shutil.rmtree(entry, ignore_errors=True)
            except FileNotFoundError:
                pass

    def entry(self, settings: Sequence[str]) -> Path:
        """The cached store of ``settings`` (generated now if missing); do not write into it."""
        key, described = store_key(settings)
        if key in self.made:
            return self.made[key]
        path = self.root / key
        if not (path / "stats.json").is_file():
            self._generate(settings, key, described)
        os.utime(path)  # keeps it from being pruned while in use
        self.made[key] = path
        return path

    def _generate(self, settings: Sequence[str], key: str, described: dict) -> None:
        from interest_lib.conf import load_config
        from interest_lib.generate.job import run_generate
        from interest_lib.storage import Tables

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        conf = load_config(overrides=[*settings, f"storage.warehouse={tmp / 'warehouse'}",
                                      f"storage.raw_dir={tmp / 'raw'}", "storage.engine=delta-rs"])
        stats = run_generate(self.spark, conf, Tables(self.spark, conf.storage))
        (tmp / "settings.json").write_text(json.dumps(described, indent=1, sort_keys=True))
        (tmp / "stats.json").write_text(json.dumps(stats, sort_keys=True))
        try:
            os.rename(tmp, self.root / key)  # atomic publish
        except OSError:  # another run published the same key first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)

    def copy_to(self, settings: Sequence[str], root: Path, raw: Optional[Path] = None,
                warehouse: Optional[Path] = None) -> dict:
        """Copy the store of ``settings`` into ``raw`` (default root/raw) and ``warehouse`` (default
        root/warehouse, which then holds ref.planted_migrations); return generate's counts."""
        src = self.entry(settings)
        shutil.copytree(src / "raw", Path(raw or root / "raw"))
        shutil.copytree(src / "warehouse", Path(warehouse or root / "warehouse"))
        return json.loads((src / "stats.json").read_text())
