"""The pipeline's Spark jobs on the delta-spark engine (the Delta data source in the shared
session, which carries the Delta jars) give the tables the delta-rs pipeline gives on the same raw
store: same rows in every table up to featurize (``*_at`` wall-clock columns aside), read without
Spark from the Delta logs each engine wrote."""

import json

import pytest

from interest_lib.cli import main
from tests.integration.test_kill_boundaries import _contents, _diff

pytestmark = pytest.mark.integration


def test_ingest_sessionize_featurize_on_delta_spark_equal_the_delta_rs_pipeline(
        pipeline, generated_stores, tmp_path):
    settings, tables, _conf = pipeline
    raw_settings = [s for s in settings if not s.startswith(("storage.", "train.store"))]
    ours = [*raw_settings, f"storage.warehouse={tmp_path / 'warehouse'}",
            f"storage.raw_dir={tmp_path / 'raw'}", "storage.engine=delta-spark"]
    generated_stores.copy_to(ours, tmp_path)  # the same raw store (a cached copy)
    args = [x for s in ours for x in ("--set", s)]
    for command in (["ingest"], ["sessionize"], ["featurize", "--no-embeddings"]):
        assert main([*command, *args]) == 0

    theirs = _comparable(_contents(tables.conf.warehouse), tables.conf.raw_dir)
    got = _comparable(_contents(str(tmp_path / "warehouse")), str(tmp_path / "raw"))
    compared = sorted(set(got) & set(theirs))
    for table in ("bronze.events", "bronze.events_quarantine", "ref.items", "silver.sessions",
                  "silver.events_sessionized", "silver.user_interest_windows",
                  "silver.interest_migrations", "silver.interest_stages"):
        assert table in compared, table
    embedding_free = [t for t in compared if "embedding" not in t and t != "gold.training_sequences"
                      and not t.startswith(("gold.model", "gold.user_interest", "gold.recomm"))]
    assert _diff({t: theirs[t] for t in embedding_free}, {t: got[t] for t in embedding_free}) == []


def _comparable(contents: dict, raw_dir: str) -> dict:
    """Rows without what differs by design: the raw folder in ``source_file`` (each pipeline reads
    its own copy of the store) and ``text_vector`` (featurize ran here without embeddings)."""
    prefix = "file://" + str(raw_dir).rstrip("/")
    out = {}
    for table, rows in contents.items():
        clean = []
        for line in rows:
            row = json.loads(line)
            row.pop("text_vector", None)
            if isinstance(row.get("source_file"), str):
                row["source_file"] = row["source_file"].replace(prefix, "<raw>")
            clean.append(json.dumps(row, sort_keys=True))
        out[table] = sorted(clean)
    return out
