"""``interest stream`` rescoring touched users on top of a featurized warehouse: the stream's
scores for a user equal what ``interest score`` computes for that user at the same as-of time,
and only touched users are rescored (baseline predictors through the same predictor interface
the trained models use).

The stream and the batch scoring run on delta-spark (the engine of a cluster's stream), on tables
that ingest, sessionize and featurize wrote with delta-rs (the same Delta tables: each engine
reads the other's, tests/spark/test_engines.py); those three jobs cost twice as much on
delta-spark, where tests/integration/test_delta_spark_pipeline.py runs them."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.cli import main
from interest_lib.conf import load_config
from interest_lib.pseudonymise import pseudonymise_py, resolve_key
from interest_lib.storage import Tables
from interest_lib.storage.catalog import BRONZE_EVENTS, GOLD_USER_INTEREST_SCORES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # minutes under the shared machine's load

SETTINGS = ["generate.users=40", "generate.days=42", "generate.mean_events_per_user=40",
            "generate.items_per_category=3", "migration.min_group_size=2",
            "score.migration=markov", "score.evolution=persistence",
            "spark.shuffle_partitions=2", "spark.master=local[2]"]
COMPARED = ["window", "next_categories", "next_probs", "p_switch", "forecast_categories", "forecast_shares",
            "forecast_stage", "as_of", "migration_model", "evolution_model"]


def _raw_users(raw: str, n: int) -> list[str]:
    users = []
    for path in sorted(glob.glob(os.path.join(raw, "events", "**", "*.json*"), recursive=True)):
        with open(path) as fh:
            for line in fh:
                try:
                    u = json.loads(line).get("user_id")
                except (ValueError, AttributeError):
                    continue
                if isinstance(u, str) and u.strip() and u not in users:
                    users.append(u)
                if len(users) == n:
                    return users
    return users


def test_stream_rescores_touched_users_like_batch_scoring(spark, generated_stores, tmp_path):
    settings = [f"storage.warehouse={tmp_path / 'warehouse'}", f"storage.raw_dir={tmp_path / 'raw'}",
                f"train.store={tmp_path / 'runs'}", *SETTINGS]
    generated_stores.copy_to(settings, tmp_path)
    prepare = [x for s in [*settings, "storage.engine=delta-rs"] for x in ("--set", s)]
    for job in (["ingest"], ["sessionize"], ["featurize", "--no-embeddings"]):
        assert main([*job, *prepare]) == 0
    settings.append("storage.engine=delta-spark")
    args = [x for s in settings for x in ("--set", s)]
    conf = load_config(overrides=[*settings, f"stream.landing={tmp_path / 'landing'}"])
    assert conf.storage.engine == "delta-spark"
    tables = Tables(spark, conf.storage)
    last = tables.read(BRONZE_EVENTS).agg(F.max(S.EVENT_TIME)).first()[0]

    users = _raw_users(str(tmp_path / "raw"), 3)
    os.makedirs(tmp_path / "landing")
    with open(tmp_path / "landing" / "new.jsonl", "w") as fh:
        for i, u in enumerate(users):
            for j in range(4):  # 4 purchases of a category new to everybody
                t = last + dt.timedelta(minutes=10 * i + j)
                fh.write(json.dumps({"event_id": f"new-{i}-{j}", "user_id": u, "item_id": "zz-item",
                                     "category_id": "zz-new", "category_path": "zz/zz-new", "event_type": "purchase",
                                     "event_time": t.isoformat() + "Z"}) + "\n")

    from interest_lib.streaming.job import run_stream

    report = run_stream(spark, conf, tables, trigger="available_now")
    key = resolve_key(conf, "local[2]")
    touched = {pseudonymise_py(u, key) for u in users}
    as_of = last + dt.timedelta(minutes=10 * (len(users) - 1) + 3, microseconds=1)
    assert (report.batches, report.accepted, report.quarantined) == (1, 12, 0)
    scores = tables.read(GOLD_USER_INTEREST_SCORES).filter(F.col("as_of") == F.lit(as_of))
    streamed = {r[S.USER_ID]: r for r in scores.collect()}
    assert set(streamed) == touched and report.scored_users == len(touched)
    assert all(r["score_run_id"] == "stream:interest-stream:0" for r in streamed.values())

    # interest score at the same as-of time, over every eligible user, gives those users the same scores
    assert main(["score", "--as-of", as_of.isoformat(), *args]) == 0
    batch = {r[S.USER_ID]: r for r in tables.read(GOLD_USER_INTEREST_SCORES)
             .filter(F.col("as_of") == F.lit(as_of)).collect()}
    assert len(batch) > len(touched)
    for u in touched:
        assert all(_same(streamed[u][c], batch[u][c]) for c in COMPARED), (
            u, {c: (streamed[u][c], batch[u][c]) for c in COMPARED})


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-5
    return a == b
