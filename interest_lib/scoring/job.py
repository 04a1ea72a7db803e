"""``interest score``: every eligible user scored inside Spark -> gold.user_interest_scores and
gold.recommendations.

1. Inputs: one row per user as of ``score.as_of`` (default: the end of the window holding the
   last event), built by the same code as the training samples (``build_scoring_inputs``);
   users with events but no complete window go the cold-start path
   (:mod:`interest_lib.scoring.cold_start`, ``score.cold_start``). ``scoring_path`` says which.
2. Predictors: the newest trained runs (or baselines fitted on the train split, or for migration
   an event-level model fitted on the driver on the events before ``as_of``:
   :mod:`interest_lib.scoring.event_models`), pickled into one broadcast; each Python worker
   rebuilds a model once and keeps it.
3. ``mapInPandas``: Arrow batches of ``spark.arrow_batch_size`` rows -> tensors in
   ``score.batch_size`` chunks (CUDA when present) -> top-K next categories, P(switch), the
   forecast, its stage, and the exploit / explore recommendations, as typed columns, each
   with a short reason built from the user's own inputs (``explanation``, see
   :mod:`interest_lib.scoring.explain`).
4. Both tables are replaced per ``as_of_date`` partition: rerunning a scoring run replaces its
   own output and never duplicates rows. Scored users must equal eligible users (else an error).
5. Drift (``monitor.drift``): the served model of ``monitor.task`` and the best baseline on the
   latest complete week of gold.training_sequences are appended to gold.model_metrics (``series``
   drift, see :mod:`interest_lib.monitor.drift`), once per week, model and table version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, functions as F

from interest_lib import schema as S
from interest_lib.conf import Config, ConfigError, parsed_setting
from interest_lib.features.sequences import build_scoring_inputs
from interest_lib.features.profiles import PROFILE_CATEGORIES, PROFILE_SHARES
from interest_lib.features.stages import INTEREST as STAGE_INTEREST, SHARE, STAGE, STAGES
from interest_lib.features.windows import ORIGIN, WINDOW, window_index_of
from interest_lib.logs import StageTimer, get_logger
from interest_lib.models import INPUT_COLUMNS
from interest_lib.scoring.predictors import Predictor, baseline_predictor, model_predictor
from interest_lib.scoring.cold_start import (
    WINDOW_PATH, cold_start_partitions, cold_start_predictor, cold_start_users,
)
from interest_lib.scoring.event_models import event_model_name
from interest_lib.scoring.explain import explain_batch
from interest_lib.sequence_contract import default_session_bucket, new_session_bucket
from interest_lib.scoring.recommend import recommend
from interest_lib.storage import Tables, Txn
from interest_lib.storage.catalog import (
    CONTRACTS, GOLD_MODEL_METRICS, GOLD_RECOMMENDATIONS, GOLD_TRAINING_SEQUENCES, GOLD_USER_INTEREST_SCORES, REF_VOCAB,
    SILVER_EVENTS_SESSIONIZED, SILVER_INTEREST_STAGES, SILVER_USER_INTEREST_WINDOWS,
)
from interest_lib.runs import fs
from interest_lib.runs.store import latest_run, table_identity

log = get_logger(__name__)

def _udf_schema() -> str:
    """What the scoring UDF returns per user (arrays of category keys, not ids): columns of
    gold.user_interest_scores, and per user an array of each gold.recommendations column, typed
    by the two tables' contracts."""
    scores, recs = CONTRACTS[GOLD_USER_INTEREST_SCORES], CONTRACTS[GOLD_RECOMMENDATIONS]

    def per_rec(*pairs):
        return ", ".join(f"{name} array<{recs.type_of(column)}>" for name, column in pairs)
    return ", ".join([
        scores.ddl([S.USER_ID, WINDOW, "next_categories", "next_probs", "p_switch", "forecast_categories",
                    "forecast_shares", "forecast_stage"]),
        per_rec(("rec_categories", "category"), ("rec_scores", "score"), ("rec_reasons", "reason")),
        scores.ddl(["explanation"]), per_rec(("rec_explanations", "explanation")), scores.ddl(["scoring_path"])])


#: What the scoring UDF returns per user (see :func:`_udf_schema`).
UDF_SCHEMA = _udf_schema()


@dataclass
class ScoreReport:
    """Counts and versions of one scoring run."""

    as_of: str
    eligible_users: int
    scored_users: int
    cold_start_users: int
    recommendation_rows: int
    migration: str
    evolution: str
    scores_version: int
    recommendations_version: int
    drift: str = ""
    """The drift week appended to gold.model_metrics (or why none was)."""


def default_as_of(last_event: dt.datetime, conf: Config) -> dt.datetime:
    """The end of the (latest) window holding ``last_event``."""
    f = conf.features
    start = ORIGIN + dt.timedelta(days=window_index_of(last_event, f.step_days) * f.step_days)
    return start + dt.timedelta(days=f.window_days)


def _arrays(pdf: pd.DataFrame) -> dict:
    """Fixed-length list columns of a pandas batch as 2-D numpy arrays."""
    return {c: np.stack(pdf[c].to_numpy()) for c in INPUT_COLUMNS}


def score_partitions(predictors, keys: np.ndarray, top_k: int, forecast_k: int, n_recs: int,
                     explore_share: float, batch_size: int, device: str, window_top_k: int,
                     session_bucket: Optional[int] = None):
    """The ``mapInPandas`` function: predictor broadcast + settings -> scored pandas batches
    (``session_bucket``: the ``ev_interval`` bucket that starts a session, for the reasons)."""
    from interest_lib.metrics import sparse_to_dense, top_k as top_entries

    stage_names = np.array(["", *STAGES], dtype=object)
    session_bucket = default_session_bucket() if session_bucket is None else session_bucket

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        migration, evolution = predictors.value
        for pdf in batches:
            arrays = _arrays(pdf)
            arrays["user_id"] = pdf["user_id"].to_numpy()  # event-level models look users up
            mig = migration.predict(arrays, batch_size, device)
            evo = evolution.predict(arrays, batch_size, device)
            n_cat = min(len(keys) - 1, mig["next_probs"].shape[1] - 1, evo["forecast"].shape[1] - 1)
            probs, forecast = mig["next_probs"][:, :n_cat + 1], evo["forecast"][:, :n_cat + 1]
            current = sparse_to_dense(arrays["win_category"][:, -window_top_k:],
                                      arrays["win_share"][:, -window_top_k:], n_cat)
            next_idx, next_p = top_entries(probs, top_k)
            fc_idx, fc_p = top_entries(forecast, forecast_k)
            fc_keep = fc_p > 0
            rec_idx, rec_score, rec_reason = recommend(current, forecast, probs, n_recs, explore_share)
            stage = evo["stage"]
            why, rec_why = explain_batch(arrays, keys, window_top_k, session_bucket, next_idx, next_p,
                                         mig["p_switch"], rec_idx, rec_reason, forecast, probs)
            yield pd.DataFrame({
                "user_id": pdf["user_id"], "window": pdf["window"],
                "next_categories": list(keys[next_idx]), "next_probs": list(next_p.astype(np.float32)),
                "p_switch": mig["p_switch"].astype(np.float32),
                "forecast_categories": [keys[i[m]] for i, m in zip(fc_idx, fc_keep)],
                "forecast_shares": [p[m].astype(np.float32) for p, m in zip(fc_p, fc_keep)],
                "forecast_stage": np.where(stage > 0, stage_names[np.clip(stage, 0, len(STAGES))], None),
                "rec_categories": list(keys[rec_idx]), "rec_scores": list(rec_score),
                "rec_reasons": list(rec_reason.astype(object)),
                "explanation": why, "rec_explanations": rec_why, "scoring_path": WINDOW_PATH,
            })
    return run


def load_predictors(conf: Config, tables: Tables, when: Optional[dt.datetime] = None,
                    events_version: Optional[int] = None) -> tuple[Predictor, Predictor]:
    """The migration and evolution predictors ``score.migration`` / ``score.evolution`` name
    (newest trained run, MLflow URI, a baseline fitted on the train split, or for migration an
    event-level model fitted on the events before ``when``, of silver.events_sessionized at
    ``events_version`` (None: the latest): :mod:`.event_models`).

    Raises:
        ConfigError: an event-level model without ``when`` (the stream's scoring) or for evolution.
    """
    store_root = fs.canonical(conf.train.store)
    chosen, train = {}, None
    version = tables.version(GOLD_TRAINING_SEQUENCES)
    for task, source in (("migration", conf.score.migration), ("evolution", conf.score.evolution)):
        if event_model_name(source) is not None:
            chosen[task] = _event_predictor(conf, tables, task, source, when, version, events_version)
        elif source == "model":
            run = latest_run(store_root, task)
            if run is None:
                raise FileNotFoundError(f"no finished {task} run under {store_root}: run `interest train "
                                        f"--model {task}` first, or set score.{task} to a baseline name")
            chosen[task] = model_predictor(task, run.model)
        elif ":/" in source:
            from interest_lib.runs.tracking import download_model

            chosen[task] = model_predictor(task, download_model(conf, source))
        else:
            if train is None:
                from interest_lib.models.baselines import FIT_COLUMNS
                from interest_lib.storage.arrays import read_arrays

                train = read_arrays(tables.path(GOLD_TRAINING_SEQUENCES), version, FIT_COLUMNS,
                                    {"split": "train"})
            n_cat = int(max(train["ev_category"].max(), train["win_category"].max(), train["next_category"].max()))
            chosen[task] = baseline_predictor(task, source, train, n_cat, version, conf.features.top_k)
    return chosen["migration"], chosen["evolution"]


def _event_predictor(conf: Config, tables: Tables, task: str, source: str, when: Optional[dt.datetime],
                     table_version: int, events_version: Optional[int]) -> Predictor:
    """``score.migration = event:<name>``: the model fitted on the driver on the events before
    ``when`` (:func:`~.event_models.fit_event_model`), its users' probabilities broadcast."""
    from interest_lib.evaluate.event_benchmark import warehouse_events
    from interest_lib.scoring.event_fits import FitStore
    from interest_lib.scoring.event_models import KEEP, fit_event_model

    name = event_model_name(source)
    if task != "migration":
        raise ConfigError(f"score.{task}={source}: event-level models predict the next category; "
                          "set it for score.migration only")
    if when is None:
        raise ConfigError(f"score.migration={source} is fitted once on the history before a scoring run's "
                          "as_of, so the stream cannot serve it: set score.migration to model or a "
                          "baseline for stream.score, or score in batch with `interest score`")
    ranker = parsed_setting(conf, "score.event_ranker")
    keep = max(KEEP, conf.score.top_k, conf.score.recommendations)
    silver = tables.version(SILVER_EVENTS_SESSIONIZED) if events_version is None else events_version
    fits = None
    if conf.score.event_refit_days > 0:
        fits = FitStore(root=fs.canonical(conf.train.store), table=table_identity(tables.path(SILVER_EVENTS_SESSIONIZED)),
                        events_version=silver, max_days=conf.score.event_refit_days)
    fitted = fit_event_model(name, warehouse_events(conf.storage.warehouse, silver), when, category_keys(tables),
                             log_line=lambda line: log.info("%s", line), keep=keep, fits=fits, ranker=ranker)
    version = f"{SILVER_EVENTS_SESSIONIZED}@{silver}" + (f" fit {fitted.fit}" if fitted.fit else "")
    return Predictor(task=task, name=source, version=version,
                     baseline=fitted, table_version=table_version, top_k=conf.features.top_k)


def category_keys(tables: Tables) -> np.ndarray:
    """Vocabulary index -> category key ('' for padding and unknown ids)."""
    rows = tables.read(REF_VOCAB).filter(F.col("kind") == "category").select("key", "idx").collect()
    keys = np.full(max((r["idx"] for r in rows), default=0) + 1, "", dtype=object)
    for r in rows:
        keys[r["idx"]] = r["key"]
    return keys


def _current_interests(tables: Tables, scored: DataFrame, top_k: int) -> DataFrame:
    """Per scored user: the cut-off window profile's top-K categories (the model's input), largest
    share first, each with its evolution stage (null where the category is not followed)."""
    profile = (tables.read(SILVER_USER_INTEREST_WINDOWS)
               .select(S.USER_ID, WINDOW, F.posexplode(F.arrays_zip(F.slice(PROFILE_CATEGORIES, 1, top_k).alias("c"),
                                                                   F.slice(PROFILE_SHARES, 1, top_k).alias("s"))))
               .select(S.USER_ID, WINDOW, "pos", F.col("col.c").alias(STAGE_INTEREST), F.col("col.s").alias(SHARE)))
    stages = tables.read(SILVER_INTEREST_STAGES).select(S.USER_ID, WINDOW, STAGE_INTEREST, STAGE)
    return (scored.select(S.USER_ID, WINDOW).join(profile, [S.USER_ID, WINDOW])
            .join(stages, [S.USER_ID, WINDOW, STAGE_INTEREST], "left")
            .groupBy(S.USER_ID).agg(F.sort_array(F.collect_list(F.struct(
                "pos", F.col(STAGE_INTEREST).alias("category"), F.col(SHARE).alias("share"), STAGE))).alias("_i"))
            .select(S.USER_ID, F.transform("_i", lambda x: F.struct(
                x["category"].alias("category"), x["share"].alias("share"), x[STAGE].alias("stage"))).alias("current_interests")))


def score_inputs(inputs: DataFrame, broadcast, keys: np.ndarray, conf: Config) -> DataFrame:
    """Scoring inputs (:func:`build_scoring_inputs`) -> the UDF's rows (:data:`UDF_SCHEMA`),
    with the predictors of ``broadcast`` loaded once per Python worker (batch and stream)."""
    s = conf.score
    return inputs.mapInPandas(
        score_partitions(broadcast, keys, s.top_k, s.forecast_k, s.recommendations, s.explore_share,
                         s.batch_size, s.device, conf.features.top_k,
                         new_session_bucket(conf.sessionize.gap_minutes)), UDF_SCHEMA)


def score_stamps(when: dt.datetime, score_run: str) -> dict:
    """The columns every scored row carries: as_of, as_of_date, score_run_id, scored_at."""
    return {"as_of": F.lit(when).cast("timestamp"), "as_of_date": F.lit(when.date()).cast("date"),
            "score_run_id": F.lit(score_run), "scored_at": F.current_timestamp()}


def score_rows(tables: Tables, scored: DataFrame, conf: Config, migration: Predictor, evolution: Predictor,
               stamp: dict) -> DataFrame:
    """gold.user_interest_scores rows from the UDF's output (:func:`score_inputs`) and
    :func:`score_stamps`, with each user's current interests (batch and stream)."""
    return (scored.join(_current_interests(tables, scored, conf.features.top_k), S.USER_ID, "left")
            .select(S.USER_ID, stamp["as_of"].alias("as_of"), WINDOW, "next_categories", "next_probs", "p_switch",
                    "forecast_categories", "forecast_shares", "forecast_stage", "current_interests", "explanation",
                    F.lit(migration.name).alias("migration_model"), F.lit(migration.version).alias("migration_version"),
                    F.lit(evolution.name).alias("evolution_model"), F.lit(evolution.version).alias("evolution_version"),
                    F.lit(migration.table_version).cast("long").alias("training_table_version"),
                    stamp["score_run_id"].alias("score_run_id"), stamp["scored_at"].alias("scored_at"),
                    stamp["as_of_date"].alias("as_of_date"), "scoring_path"))


def append_drift(spark: SparkSession, conf: Config, tables: Tables, migration: Predictor,
                 evolution: Predictor) -> str:
    """Append the drift rows of the latest complete week (``monitor.*``) to gold.model_metrics;
    returns a one-line summary (or why nothing was appended). Idempotent: the same week, model and
    training-table version are appended once."""
    from interest_lib.monitor.drift import week_drift

    m = conf.monitor
    if not m.drift:
        return "off (monitor.drift = false)"
    predictor = migration if m.task == "migration" else evolution
    if predictor.baseline is not None:
        return f"none: score.{m.task} is {predictor.name}, not a trained model (the series follows a trained model)"
    version = tables.version(GOLD_TRAINING_SEQUENCES)
    rows = week_drift(tables.path(GOLD_TRAINING_SEQUENCES), version, predictor, m.task, m.slice, m.metric,
                      conf.score.batch_size, conf.score.device)
    if not rows:
        return f"none: no {m.slice} test sample in the latest week of {GOLD_TRAINING_SEQUENCES}@{version}"
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    df = spark.createDataFrame([{**r, "evaluated_at": now} for r in rows], CONTRACTS[GOLD_MODEL_METRICS].ddl())
    written = tables.write(df, GOLD_MODEL_METRICS, mode="append", txn=Txn(rows[0]["evaluation_id"]))
    model, base = rows
    state = "already appended" if written.skipped else f"appended as version {written.version}"
    return (f"week of {model['week_start']:%Y-%m-%d}: {model['model']} {m.metric} {model['value']:.4f} vs best "
            f"baseline {base['model']} {base['value']:.4f} ({model['rows']} samples; {state})")


def run_score(spark: SparkSession, conf: Config, tables: Tables, as_of: Optional[str] = None) -> ScoreReport:
    """Score every eligible user (see the module docstring) and return the counts."""
    timer = StageTimer(log)
    for name in (SILVER_EVENTS_SESSIONIZED, SILVER_USER_INTEREST_WINDOWS, REF_VOCAB, GOLD_TRAINING_SEQUENCES):
        if not tables.exists(name):
            raise FileNotFoundError(f"{name} does not exist: run `interest featurize` first")
    # one version of the events for the inputs and an event-level model (a sessionize committing
    # meanwhile must not give them different histories)
    events_version = tables.version(SILVER_EVENTS_SESSIONIZED)
    events = tables.read(SILVER_EVENTS_SESSIONIZED, version=events_version)
    text = as_of or conf.score.as_of
    when = (dt.datetime.fromisoformat(text).replace(tzinfo=None) if text
            else default_as_of(events.agg(F.max(S.EVENT_TIME)).first()[0], conf))
    migration, evolution = load_predictors(conf, tables, when, events_version)
    score_run = conf.run.run_id or "score-" + hashlib.sha256(
        f"{migration.version}|{evolution.version}|{when.isoformat()}".encode()).hexdigest()[:12]
    log.info("score as of %s with %s (%s) and %s (%s)", when, migration.name, migration.version,
             evolution.name, evolution.version)
    with timer.stage("inputs") as c:
        inputs = build_scoring_inputs(events, tables.read(SILVER_USER_INTEREST_WINDOWS), tables.read(REF_VOCAB), conf, when)
        inputs = inputs.localCheckpoint()
        eligible = window_users = inputs.count()
        cold = None
        if conf.score.cold_start:
            cold = cold_start_users(events, inputs, conf, when).localCheckpoint()
            eligible += cold.count()
        c.update(eligible_users=eligible, cold_start_users=eligible - window_users)
    with timer.stage("predict") as c:
        keys = category_keys(tables)
        broadcast = spark.sparkContext.broadcast((migration, evolution))
        scored = score_inputs(inputs, broadcast, keys, conf)
        if cold is not None:
            s = conf.score
            cold_model = spark.sparkContext.broadcast(cold_start_predictor(tables, conf, keys, when))
            scored = scored.unionByName(cold.mapInPandas(cold_start_partitions(
                cold_model, keys, s.top_k, s.forecast_k, s.recommendations, s.explore_share), UDF_SCHEMA))
        scored = scored.localCheckpoint()
        c.update(scored=scored.count())
    stamp = score_stamps(when, score_run)
    with timer.stage("write") as c:
        scores = score_rows(tables, scored, conf, migration, evolution, stamp)
        written = tables.write(scores, GOLD_USER_INTEREST_SCORES, mode="overwrite-partitions", partition_by=["as_of_date"])
        recs = (scored.select(S.USER_ID, F.posexplode(F.arrays_zip("rec_categories", "rec_scores", "rec_reasons",
                                                                        "rec_explanations")).alias("pos", "r"))
                .select(S.USER_ID, stamp["as_of"].alias("as_of"), (F.col("pos") + 1).alias("rank"),
                        F.col("r.rec_categories").alias("category"), F.col("r.rec_scores").alias("score"),
                        F.col("r.rec_reasons").alias("reason"),
                        F.col("r.rec_explanations").alias("explanation"), stamp["score_run_id"].alias("score_run_id"),
                        stamp["as_of_date"].alias("as_of_date")))
        rec_written = tables.write(recs, GOLD_RECOMMENDATIONS, mode="overwrite-partitions", partition_by=["as_of_date"])
        n_scored = tables.read(GOLD_USER_INTEREST_SCORES).filter(F.col("as_of_date") == when.date()).count()
        n_recs = tables.read(GOLD_RECOMMENDATIONS).filter(F.col("as_of_date") == when.date()).count()
        c.update(scored_users=n_scored, recommendation_rows=n_recs)
    if n_scored != eligible:
        raise RuntimeError(f"scored {n_scored:,} users but {eligible:,} were eligible as of {when}")
    with timer.stage("drift"):
        drift = append_drift(spark, conf, tables, migration, evolution)
        log.info("drift: %s", drift)
    return ScoreReport(as_of=str(when), eligible_users=eligible, scored_users=n_scored,
                       cold_start_users=eligible - window_users, recommendation_rows=n_recs,
                       migration=f"{migration.name} {migration.version}", evolution=f"{evolution.name} {evolution.version}",
                       scores_version=written.version, recommendations_version=rec_written.version, drift=drift)
