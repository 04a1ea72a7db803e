"""The whole foundation pipeline end to end on a small generated store, as a user runs it."""

import os
import subprocess
import sys

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.cli import main
from interest_lib.ingest.pseudonymise import pseudonymise_py, resolve_key
from interest_lib.features.job import planted_windows
from interest_lib.features.migrations import evaluate_detection
from interest_lib.storage.catalog import (
    BRONZE_EVENTS, BRONZE_QUARANTINE, GOLD_TRAINING_SEQUENCES, REF_ITEM_EMBEDDINGS, REF_ITEMS,
    REF_PLANTED_MIGRATIONS, SILVER_EVENTS_SESSIONIZED, SILVER_INTEREST_MIGRATIONS, SILVER_INTEREST_STAGES,
    SILVER_SESSIONS, SILVER_USER_INTEREST_WINDOWS,
)
from tests.jvm import submit_args

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_generated_record_is_accounted_for(pipeline):
    _settings, tables, _conf = pipeline
    bronze = tables.read(BRONZE_EVENTS)
    quarantine = tables.read(BRONZE_QUARANTINE).filter("record_type = 'event'")
    n_bronze, n_quarantine = bronze.count(), quarantine.count()
    assert n_bronze > 3000 and n_quarantine > 0
    # No event id twice in bronze; every quarantined record names a reason.
    assert bronze.select(S.EVENT_ID).distinct().count() == n_bronze
    assert quarantine.filter(F.col(S.REASON).isNull()).count() == 0
    reasons = {r[S.REASON] for r in quarantine.select(S.REASON).distinct().collect()}
    assert {"unknown_event_type", "malformed_event_time", "missing_user_id"} <= reasons
    assert tables.read(REF_ITEMS).count() > 100


def test_sessions_cover_every_event_once(pipeline):
    _settings, tables, _conf = pipeline
    bronze = tables.read(BRONZE_EVENTS)
    sessionized = tables.read(SILVER_EVENTS_SESSIONIZED)
    sessions = tables.read(SILVER_SESSIONS)
    assert sessionized.count() == bronze.count()
    assert sessions.agg(F.sum(S.N_EVENTS)).first()[0] == bronze.count()
    # A session never has an inner gap above 30 minutes nor lasts more than 240 minutes.
    assert sessions.agg(F.max(S.DURATION_S)).first()[0] <= 240 * 60
    funnel = {r.event_type: r["count"] for r in bronze.groupBy(S.EVENT_TYPE).count().collect()}
    assert funnel["view"] > funnel["cart"] > funnel["purchase"] > 0


def test_planted_users_are_found_under_their_pseudonym(pipeline):
    _settings, tables, conf = pipeline
    planted = tables.read(REF_PLANTED_MIGRATIONS).limit(5).collect()
    assert planted
    key = resolve_key(conf)
    users = {r.user_id for r in tables.read(BRONZE_EVENTS).select(S.USER_ID).distinct().collect()}
    assert all(pseudonymise_py(p.raw_user_id, key) in users for p in planted)


def test_rerun_resumes_without_writing_anything_twice(pipeline):
    settings, tables, _conf = pipeline
    before = {t: tables.version(t) for t in (BRONZE_EVENTS, SILVER_SESSIONS, SILVER_EVENTS_SESSIONIZED)}
    n = tables.read(BRONZE_EVENTS).count()
    assert main(["run", *[x for s in settings for x in ("--set", s)]]) == 0
    assert {t: tables.version(t) for t in before} == before
    assert tables.read(BRONZE_EVENTS).count() == n


def test_jobs_run_under_spark_submit(pipeline):
    settings, tables, _conf = pipeline
    spark_submit = os.path.join(os.path.dirname(__import__("pyspark").__file__), "bin", "spark-submit")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYTHONPATH=REPO)
    cmd = [spark_submit, "--master", "local[2]", *submit_args(),
           os.path.join(REPO, "jobs", "sessionize.py"), "--full",
           *[x for s in settings for x in ("--set", s)]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sessionize (full)" in proc.stdout
    assert tables.history(SILVER_SESSIONS)[0]["metadata"]["interest.operation"] == "overwrite"


def test_featurize_outputs_and_detection_floor(pipeline):
    _settings, tables, conf = pipeline
    windows = tables.read(SILVER_USER_INTEREST_WINDOWS)
    assert windows.count() > 150 * 3
    assert windows.filter(F.abs(F.aggregate("profile_shares", F.lit(0.0), lambda a, x: a + x) - 1) > 1e-6).count() == 0
    stages = {r.stage for r in tables.read(SILVER_INTEREST_STAGES).select("stage").distinct().collect()}
    assert stages == {"initial", "developing", "stable", "fading"}
    assert tables.read(REF_ITEM_EMBEDDINGS).count() == tables.read(REF_ITEMS).count()
    splits = {r.split: r["count"] for r in tables.read(GOLD_TRAINING_SEQUENCES).groupBy("split").count().collect()}
    assert splits.get("train", 0) > 0 and splits.get("test", 0) > 0 and splits.get("validation", 0) > 0
    # Detection against the planted truth on this small set: a floor that a broken detector fails.
    quality = evaluate_detection(tables.read(SILVER_INTEREST_MIGRATIONS), planted_windows(tables, conf))
    assert quality.planted > 20
    assert quality.recall >= 0.4 and quality.precision >= 0.3, quality.summary()
    assert quality.median_delay_windows <= 1


def test_stages_agree_with_planted_trajectories(pipeline):
    """After a planted abrupt / life-stage migration the new interest is young (initial or
    developing) and, two windows later, the old one is fading."""
    _settings, tables, conf = pipeline
    planted = planted_windows(tables, conf).filter("kind in ('abrupt', 'life_stage')").alias("p")
    stages = tables.read(SILVER_INTEREST_STAGES).alias("s")

    def stages_of(category, offset):
        cond = ((F.col("p.user_id") == F.col("s.user_id")) & (F.col("s.interest") == F.col(f"p.{category}"))
                & (F.col("s.window") == F.col("p.window") + offset))
        return [r.stage for r in planted.join(stages, cond).select("s.stage").collect()]

    new, old = stages_of("to_category", 1), stages_of("from_category", 2)
    assert len(new) >= 10 and len(old) >= 10
    assert sum(s in ("initial", "developing") for s in new) / len(new) >= 0.7
    assert sum(s == "fading" for s in old) / len(old) >= 0.7
