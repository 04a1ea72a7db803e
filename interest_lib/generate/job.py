"""The generate job: synthetic store -> raw event files, raw item catalogue, planted truth.

Users are generated *in Spark*: ``spark.range(users)`` is split into partitions and
``mapInPandas`` simulates each user with numpy from ``[seed, user]``, so the data set is the
same whatever the number of partitions or executors, and it scales with the cluster.

Outputs (all overwritten on every run):

- ``<raw_dir>/events/arrival_date=YYYY-MM-DD/part-*.json`` (JSON lines, ``format: jsonl``; every
  field of :data:`schema.RAW_FIELDS` present, as a string or null) or ``part-*.csv`` (with a
  header, ``format: csv``; null = empty field). ``arrival_date`` is the day the record reached
  the platform: the event's date, or 1-7 days later for late arrivals.
- ``<raw_dir>/items/part-*.json``: the catalogue, JSON lines with the columns of
  :data:`schema.ITEM_SCHEMA` (price a JSON number).
- Delta table ``ref.planted_migrations`` (:data:`schema.PLANTED_MIGRATION_SCHEMA`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from interest_lib import schema as S
from interest_lib.conf import Config, GenerateConf
from interest_lib.generate.catalogue import get_catalogue
from interest_lib.generate.dirt import (
    ARRIVAL_DATE, DIRT_COL, DIRT_KINDS, DUP_COL, LATE_COL, DirtPlan, apply_dirt, plan_dirt,
)
from interest_lib.generate.events import format_events, get_context, simulate_user
from interest_lib.generate.skew import bot_chunk, bot_chunks, make_viral
from interest_lib.generate.trajectories import KINDS, draw_profile, raw_user_id
from interest_lib.logs import StageTimer, get_logger
from interest_lib.storage.catalog import REF_PLANTED_MIGRATIONS

log = get_logger(__name__)

#: What the events ``mapInPandas`` emits: raw strings + arrival date + bookkeeping flags.
GENERATED_EVENT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in S.RAW_FIELDS]
    + [T.StructField(ARRIVAL_DATE, T.StringType(), False),
       T.StructField(DIRT_COL, T.StringType()),
       T.StructField(DUP_COL, T.BooleanType(), False),
       T.StructField(LATE_COL, T.BooleanType(), False)]
)

#: One row per planted migration, or one row with ``migration_us`` = -1 for a user without.
PROFILE_SCHEMA = T.StructType([
    T.StructField("raw_user_id", T.StringType(), False),
    T.StructField("kind", T.StringType(), False),
    T.StructField("clock_skew_s", T.LongType(), False),
    T.StructField("row_in_user", T.LongType(), False),
    T.StructField("migration_us", T.LongType(), False),
    T.StructField("from_category", T.StringType()),
    T.StructField("to_category", T.StringType()),
])

_TARGET_ROWS_PER_CHUNK = 20_000


@dataclass(frozen=True)
class GenParams:
    """The picklable subset of :class:`GenerateConf` the executors need."""

    seed: int
    users: int
    mean_events: int
    items_per_category: int
    start_date: str
    days: int
    dirt_rate: float
    duplicate_rate: float
    late_rate: float
    bot_events: int = 0
    viral_item_share: float = 0.0

    @classmethod
    def from_conf(cls, g: GenerateConf) -> "GenParams":
        """Take the generator settings from the ``generate`` conf section."""
        for name in ("dirt_rate", "duplicate_rate", "late_rate"):
            if not 0.0 <= getattr(g, name) < 1.0:
                raise ValueError(f"generate.{name} must be in [0, 1), got {getattr(g, name)}")
        if not 0.0 <= g.viral_item_share < 1.0:
            raise ValueError(f"generate.viral_item_share must be in [0, 1), got {g.viral_item_share}")
        if g.bot_events < 0:
            raise ValueError(f"generate.bot_events must be >= 0, got {g.bot_events}")
        return cls(g.seed, g.users, g.mean_events_per_user, g.items_per_category, g.start_date,
                   g.days, g.dirt_rate, g.duplicate_rate, g.late_rate, g.bot_events, g.viral_item_share)

    @property
    def chunk_users(self) -> int:
        """Users simulated together (one pandas frame of ~20k rows)."""
        return max(1, min(2000, _TARGET_ROWS_PER_CHUNK // max(self.mean_events, 1)))


def simulate_users(p: GenParams, users: np.ndarray) -> pd.DataFrame:
    """Raw events of ``users`` (pure pandas; what each Spark task runs on its user ids).

    Returns:
        Columns of :data:`GENERATED_EVENT_SCHEMA`, users in the given order, each user's events
        in time order, duplicates right after their original.
    """
    if len(users) == 0:
        return pd.DataFrame({f.name: pd.Series(dtype=bool if isinstance(f.dataType, T.BooleanType)
                                               else object) for f in GENERATED_EVENT_SCHEMA})
    ctx = get_context(p.seed, p.items_per_category, p.start_date, p.days)
    sims, plans = [], []
    for user in users:
        prof = draw_profile(p.seed, int(user), ctx.cat, p.days, p.mean_events)
        rng = np.random.default_rng([p.seed, int(user), 1])
        sim = simulate_user(ctx, prof, rng)
        if p.viral_item_share > 0:  # its own stream: the rest of the user is unchanged
            make_viral(ctx, sim, p.viral_item_share, np.random.default_rng([p.seed, int(user), 2]))
        plans.append(plan_dirt(rng, len(sim["t"]), p.dirt_rate, p.duplicate_rate, p.late_rate))
        sims.append(sim)
    return apply_dirt(format_events(ctx, users, sims), DirtPlan.concat(plans))


def profile_rows(p: GenParams, users: np.ndarray) -> pd.DataFrame:
    """Kind, clock skew and planted migrations of ``users`` (rows of :data:`PROFILE_SCHEMA`)."""
    cat = get_catalogue(p.seed, p.items_per_category)
    start_us = int(pd.Timestamp(p.start_date, tz="UTC").value // 1000)
    rows = []
    for user in users:
        prof = draw_profile(p.seed, int(user), cat, p.days, p.mean_events)
        uid = raw_user_id(int(user))
        if not prof.migrations:
            rows.append((uid, prof.kind, prof.clock_skew_s, 0, -1, None, None))
        for i, (t, src, dst) in enumerate(prof.migrations):
            rows.append((uid, prof.kind, prof.clock_skew_s, i, start_us + int(round(t)) * 1_000_000,
                         cat.category_ids[src], cat.category_ids[dst]))
    return pd.DataFrame(rows, columns=PROFILE_SCHEMA.fieldNames())


def _partitions(spark: SparkSession, g: GenerateConf) -> int:
    return g.partitions if g.partitions > 0 else 4 * spark.sparkContext.defaultParallelism


def events_frame(spark: SparkSession, g: GenerateConf, partitions: int = 0) -> DataFrame:
    """The generated raw events (lazy) as a DataFrame of :data:`GENERATED_EVENT_SCHEMA`."""
    params = GenParams.from_conf(g)
    n_parts = partitions or _partitions(spark, g)

    def gen(batches):
        for batch in batches:
            ids = batch["id"].to_numpy()
            for lo in range(0, len(ids), params.chunk_users):
                yield simulate_users(params, ids[lo:lo + params.chunk_users])

    users = spark.range(0, g.users, numPartitions=n_parts).mapInPandas(gen, GENERATED_EVENT_SCHEMA)
    chunks = bot_chunks(params.bot_events)
    if not chunks:
        return users
    return users.unionByName(spark.range(0, chunks, numPartitions=min(chunks, n_parts))
                             .mapInPandas(lambda batches: _bot(params, batches), GENERATED_EVENT_SCHEMA))


def _bot(p: GenParams, batches):
    """The bot's chunks named by the ids of ``batches`` (clean: no dirt, duplicates or lateness)."""
    ctx = get_context(p.seed, p.items_per_category, p.start_date, p.days)
    for batch in batches:
        for chunk in batch["id"].to_numpy():
            frame = bot_chunk(ctx, p.seed, int(chunk), p.bot_events, p.viral_item_share)
            n = len(frame)
            yield apply_dirt(frame, DirtPlan(np.zeros(n, np.int8), np.zeros(n, np.int64),
                                             np.zeros(n, bool), np.zeros(n, np.int64)))


def profiles_frame(spark: SparkSession, g: GenerateConf, partitions: int = 0) -> DataFrame:
    """Users' kinds and planted migrations (lazy) as a DataFrame of :data:`PROFILE_SCHEMA`."""
    params = GenParams.from_conf(g)
    n_parts = partitions or _partitions(spark, g)

    def gen(batches):
        for batch in batches:
            yield profile_rows(params, batch["id"].to_numpy())

    return spark.range(0, g.users, numPartitions=n_parts).mapInPandas(gen, PROFILE_SCHEMA)


def planted_migrations(profiles: DataFrame) -> DataFrame:
    """``ref.planted_migrations`` rows (:data:`schema.PLANTED_MIGRATION_SCHEMA`) of profiles."""
    return profiles.filter(F.col("migration_us") >= 0).select(
        F.col("raw_user_id"),
        F.timestamp_micros(F.col("migration_us")).alias("migration_time"),
        F.col("from_category"), F.col("to_category"), F.col("kind"),
    )


def write_raw_events(events: DataFrame, path: str, fmt: str) -> dict:
    """Write generated events to ``path/arrival_date=.../part-*`` and count what was written.

    Counting rides on the write itself (``DataFrame.observe``): the data is generated once.
    """
    obs = Observation("generate_events")
    observed = events.observe(
        obs,
        F.count(F.lit(1)).alias("events_written"),
        F.coalesce(F.sum(F.col(DUP_COL).cast("long")), F.lit(0)).alias("duplicates"),
        F.coalesce(F.sum(F.col(LATE_COL).cast("long")), F.lit(0)).alias("late"),
        *[F.coalesce(F.sum((F.col(DIRT_COL) == kind).cast("long")), F.lit(0)).alias(f"dirt_{kind}")
          for kind in DIRT_KINDS],
    )
    writer = (observed.select(*S.RAW_FIELDS, ARRIVAL_DATE).write.mode("overwrite")
              .partitionBy(ARRIVAL_DATE))
    if fmt == "csv":
        writer.option("header", "true").csv(path)
    elif fmt == "jsonl":
        writer.option("ignoreNullFields", "false").json(path)
    else:
        raise ValueError(f"generate.format {fmt!r}: expected jsonl or csv")
    return {k: int(v) for k, v in obs.get.items()}


def run_generate(spark: SparkSession, conf: Config, tables) -> dict:
    """Generate the synthetic store: raw events and items under ``storage.raw_dir``, and the
    planted migrations in ``ref.planted_migrations``.

    Args:
        spark: the session.
        conf: the whole configuration (``generate`` and ``storage.raw_dir`` are used).
        tables: a :class:`interest_lib.storage.Tables` for the Delta write.

    Returns:
        Counts: users, users_<kind>, skewed_clock_users, categories, items, planted_migrations,
        events_clean, events_written, duplicates, late, dirt_<kind> for each dirt kind and
        dirt_total.
    """
    g = conf.generate
    raw_dir = conf.storage.raw_dir.rstrip("/")
    timer = StageTimer(log)
    stats: dict = {}
    log.info("generate: %s users x ~%s events, %s days from %s, seed %s, %s partitions -> %s",
             f"{g.users:,}", g.mean_events_per_user, g.days, g.start_date, g.seed,
             _partitions(spark, g), raw_dir)

    with timer.stage("catalogue") as c:
        cat = get_catalogue(g.seed, g.items_per_category)
        items = spark.createDataFrame(cat.items, S.ITEM_SCHEMA)
        (items.coalesce(1).write.mode("overwrite").option("ignoreNullFields", "false")
         .json(f"{raw_dir}/items"))
        c.update(categories=cat.n_leaves, items=len(cat.items))
    stats.update(categories=cat.n_leaves, items=len(cat.items))

    with timer.stage("profiles") as c:
        profiles = profiles_frame(spark, g).cache()
        per_kind = {r["kind"]: (r["users"], r["skewed"]) for r in (
            profiles.filter(F.col("row_in_user") == 0).groupBy("kind")
            .agg(F.count(F.lit(1)).alias("users"),
                 F.sum((F.col("clock_skew_s") != 0).cast("long")).alias("skewed"))
            .collect())}
        stats["users"] = sum(u for u, _ in per_kind.values())
        for kind in KINDS:
            stats[f"users_{kind}"] = int(per_kind.get(kind, (0, 0))[0])
        stats["skewed_clock_users"] = int(sum(s for _, s in per_kind.values()))
        c.update(users=stats["users"], **{k: stats[f"users_{k}"] for k in KINDS})

    with timer.stage("planted_migrations") as c:
        result = tables.write(planted_migrations(profiles), REF_PLANTED_MIGRATIONS,
                              mode="overwrite")
        n_planted = result.rows_written
        if n_planted is None:
            n_planted = profiles.filter(F.col("migration_us") >= 0).count()
        stats["planted_migrations"] = int(n_planted)
        c.update(planted_migrations=stats["planted_migrations"], version=result.version)
        profiles.unpersist()

    with timer.stage("events") as c:
        counts = write_raw_events(events_frame(spark, g), f"{raw_dir}/events", g.format)
        counts["events_clean"] = counts["events_written"] - counts["duplicates"]
        counts["dirt_total"] = sum(counts[f"dirt_{k}"] for k in DIRT_KINDS)
        c.update(counts)
    stats.update(counts)
    log.info("generate: done in %.1f s: %s", sum(s[1] for s in timer.stages),
             ", ".join(f"{k}={v:,}" for k, v in stats.items()))
    return stats
