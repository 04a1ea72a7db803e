"""The report's numbers: pure functions from table rows (pandas) to small frames and dicts.

Each function takes the columns it needs (whole tables are never required), returns a frame with
a documented shape, and returns an empty result (never raises) on an empty input; the page says
why a section is empty. No Spark, no I/O: :mod:`~interest_lib.report.load` reads the tables.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Mapping, Optional

import pandas as pd

#: The evolution stages in their order of life (the stacked areas' order).
STAGES = ("initial", "developing", "stable", "fading")
#: Metrics drawn in the models-vs-baselines charts, per task.
CHART_METRICS = {"migration": ("hr@10", "ndcg@10", "mrr"), "evolution": ("js", "stage_acc")}
Z95 = 1.959963984540054


def row_label(category: str, path: Optional[str], level: int) -> str:
    """The heat-map row of ``category``: the first ``level`` parts of its ``/``-separated path
    (0, or no path known: the category itself)."""
    if level <= 0 or not path:
        return category
    return "/".join(str(path).split("/")[:level])


def category_rows(items: Optional[pd.DataFrame], level: int) -> dict[str, str]:
    """category_id -> heat-map row, from catalogue rows with ``category_id, category_path``
    (the most frequent path of a category wins; ties: alphabetical first)."""
    if items is None or items.empty or level <= 0:
        return {}
    paths = (items.dropna(subset=["category_id"]).groupby(["category_id", "category_path"]).size()
             .reset_index(name="n").sort_values(["category_id", "n", "category_path"],
                                                ascending=[True, False, True])
             .drop_duplicates("category_id"))
    return {c: row_label(c, p, level) for c, p in zip(paths.category_id, paths.category_path)}


def _exploded_shares(windows: pd.DataFrame) -> pd.DataFrame:
    """One row per user × window × category with its share in that window."""
    active = windows
    if "n_events" in active.columns:
        active = active[active.n_events.fillna(0) > 0]
    out = active[["user_id", "window_start", "window_categories", "window_shares"]].explode(
        ["window_categories", "window_shares"])
    out = out.dropna(subset=["window_categories"])
    return out.rename(columns={"window_categories": "category", "window_shares": "share"}).astype({"share": float})


def interest_heatmap(windows: Optional[pd.DataFrame], rows_of: Mapping[str, str],
                     min_users: int = 1) -> pd.DataFrame:
    """Share of active users' interest per heat-map row and window.

    Args:
        windows: silver.user_interest_windows rows (``user_id, window_start, window_categories,
            window_shares``; ``n_events`` when present: windows without events are not active).
        rows_of: category -> row (see :func:`category_rows`); unmapped categories are their own row.
        min_users: windows with fewer active users are left out (a column of one or two users
            would show individuals' interests; the minimum group size).

    Returns:
        ``window_start, row, share, users``: ``share`` = sum over the window's active users of their
        shares in the row's categories / active users (each window's shares sum to 1 when users'
        shares do); ``users`` = active users in the window. Empty input: an empty frame.
    """
    columns = ["window_start", "row", "share", "users"]
    if windows is None or windows.empty:
        return pd.DataFrame(columns=columns)
    shares = _exploded_shares(windows)
    if shares.empty:
        return pd.DataFrame(columns=columns)
    shares["row"] = shares.category.map(lambda c: rows_of.get(c, c))
    users = shares.groupby("window_start").user_id.nunique().rename("users")
    users = users[users >= min_users]
    shares = shares[shares.window_start.isin(users.index)]
    out = shares.groupby(["window_start", "row"]).share.sum().reset_index().join(users, on="window_start")
    out["share"] = out.share / out.users
    return out[columns].sort_values(["window_start", "row"]).reset_index(drop=True)


def migration_marks(migrations: Optional[pd.DataFrame], rows_of: Mapping[str, str],
                    min_group_size: int) -> tuple[pd.DataFrame, int]:
    """Migrations into each heat-map row per window, for the overlay.

    Cells with fewer than ``min_group_size`` migrations are not shown (the flows' rule).

    Returns:
        (``window_start, row, migrations``, number of migrations in hidden cells).
    """
    columns = ["window_start", "row", "migrations"]
    if migrations is None or migrations.empty:
        return pd.DataFrame(columns=columns), 0
    m = migrations.assign(row=migrations.to_category.map(lambda c: rows_of.get(c, c)))
    cells = m.groupby(["window_start", "row"]).size().rename("migrations").reset_index()
    shown = cells[cells.migrations >= min_group_size]
    hidden = int(cells.migrations.sum() - shown.migrations.sum())
    return shown.sort_values(["window_start", "row"]).reset_index(drop=True), hidden


ALL_PERIODS = "all windows"


def flow_periods(flows: Optional[pd.DataFrame], min_group_size: int) -> pd.DataFrame:
    """The migration flows per period: each window, and all windows summed.

    Only published cells (gold.migration_flows, already noised when ε-DP is on) are used, and
    any cell under ``min_group_size`` is dropped again, so a hand-edited or older table cannot
    put a small cell on the page. Sums of published cells are post-processing (no extra privacy
    cost).

    Returns:
        ``period, window_start, source, target, users`` (``period`` = window start date as
        YYYY-MM-DD, or :data:`ALL_PERIODS` with ``window_start`` NaT), largest flows first.
    """
    columns = ["period", "window_start", "source", "target", "users"]
    if flows is None or flows.empty:
        return pd.DataFrame(columns=columns)
    cells = flows[flows.users >= min_group_size]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    per = cells.rename(columns={"from_category": "source", "to_category": "target"})
    per = per.assign(period=pd.to_datetime(per.window_start).dt.strftime("%Y-%m-%d"))[columns]
    total = per.groupby(["source", "target"]).users.sum().reset_index().assign(
        period=ALL_PERIODS, window_start=pd.NaT)[columns]
    out = pd.concat([total, per.sort_values("window_start")], ignore_index=True)
    out["users"] = out.users.astype(int)
    return out.sort_values(["window_start", "users"], ascending=[True, False], na_position="first",
                           kind="stable").reset_index(drop=True)


def stage_counts(stages: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Followed interests per stage and window (silver.interest_stages ``window_start, stage``).

    Returns:
        ``window_start, stage, interests`` for every window × stage of :data:`STAGES` (0 where
        none; unknown stage names kept after them).
    """
    columns = ["window_start", "stage", "interests"]
    if stages is None or stages.empty:
        return pd.DataFrame(columns=columns)
    counts = stages.groupby(["window_start", "stage"]).size().rename("interests")
    names = list(STAGES) + sorted(set(stages.stage.dropna()) - set(STAGES))
    full = pd.MultiIndex.from_product([sorted(stages.window_start.unique()), names], names=["window_start", "stage"])
    return counts.reindex(full, fill_value=0).reset_index()[columns]


def mean_ci(value: float, n: int) -> tuple[float, float]:
    """A conservative 95% interval of a mean of ``n`` values in [0, 1] from the mean alone.

    A variable in [0, 1] with mean μ has variance at most μ(1 − μ) (equality for 0/1 values:
    hit rates, accuracies), so μ ± 1.96·sqrt(μ(1 − μ)/n), clipped to [0, 1], is at least as wide
    as the normal interval of the mean. (nan, nan) when ``n`` < 1 or the value is missing.
    """
    if not n or n < 1 or value is None or not math.isfinite(value):
        return float("nan"), float("nan")
    v = min(max(float(value), 0.0), 1.0)
    half = Z95 * math.sqrt(v * (1 - v) / n)
    return max(0.0, v - half), min(1.0, v + half)


def latest_metrics(metrics: Optional[pd.DataFrame]) -> pd.DataFrame:
    """The newest evaluation of gold.model_metrics (``series`` test, or no series: tables written
    before drift rows) with a 95% interval per value.

    Uses the row's ``ci_low`` / ``ci_high`` (the evaluation's user-clustered bootstrap) where the
    table has them and they are finite (``ci`` = "stored"), else :func:`mean_ci` from ``value``
    and ``rows`` (``ci`` = "bound": evaluations written before the CI columns).

    Returns:
        ``evaluation_id, task, slice, metric, model, kind, value, rows, ci_low, ci_high, ci``,
        baselines first; empty when there is no evaluation.
    """
    columns = ["evaluation_id", "task", "slice", "metric", "model", "kind", "value", "rows",
               "ci_low", "ci_high", "ci"]
    if metrics is None or metrics.empty:
        return pd.DataFrame(columns=columns)
    if "series" in metrics.columns:
        metrics = metrics[metrics.series.isna() | (metrics.series == "test")]
        if metrics.empty:
            return pd.DataFrame(columns=columns)
    newest = metrics.sort_values("evaluated_at").evaluation_id.iloc[-1]
    out = metrics[metrics.evaluation_id == newest].copy()
    for c in ("ci_low", "ci_high"):
        out[c] = out[c].astype(float) if c in out.columns else float("nan")
    stored = out.ci_low.notna() & out.ci_high.notna()
    bounds = [mean_ci(v, n) for v, n in zip(out.value, out.rows)]
    out["ci_low"] = out.ci_low.where(stored, [b[0] for b in bounds])
    out["ci_high"] = out.ci_high.where(stored, [b[1] for b in bounds])
    out["ci"] = stored.map({True: "stored", False: "bound"})
    out["order"] = (out.kind != "baseline").astype(int)
    return out.sort_values(["task", "order", "model", "slice", "metric"])[columns].reset_index(drop=True)


def drift_frame(points: Iterable) -> pd.DataFrame:
    """The drift series (:func:`interest_lib.monitor.trend.drift_points`) as a frame:
    ``week_start, model, model_value, model_low, model_high, baseline, baseline_value,
    baseline_low, baseline_high, rows, below``, oldest week first (empty without points)."""
    columns = ["week_start", "model", "model_value", "model_low", "model_high", "baseline", "baseline_value",
               "baseline_low", "baseline_high", "rows", "below"]
    rows = [[getattr(p, c) for c in columns] for p in points]
    return pd.DataFrame(rows, columns=columns)


def stream_progress(progress: Optional[pd.DataFrame], last: int = 500) -> pd.DataFrame:
    """gold.stream_progress rows for the latency chart: the ``last`` micro-batches (by
    ``recorded_at``), one row per (query, batch id), the newest record of a batch winning.

    Returns:
        ``query, batch_id, input_rows, processed_rows_per_s, batch_seconds, latency_s`` in
        recording order; empty without rows.
    """
    columns = ["query", "batch_id", "input_rows", "processed_rows_per_s", "batch_seconds", "latency_s"]
    if progress is None or progress.empty:
        return pd.DataFrame(columns=columns)
    out = (progress.sort_values("recorded_at").drop_duplicates(["query", "batch_id"], keep="last")
           .tail(last))
    return out[columns].reset_index(drop=True)


def ingest_accounting(events_batches: Optional[pd.Series], quarantine: Optional[pd.DataFrame],
                      ingest_report: Optional[Mapping] = None) -> dict:
    """rows in = accepted + quarantined + duplicates, with the quarantine reasons.

    Args:
        events_batches: bronze.events ``ingest_batch`` column (one value per stored event).
        quarantine: bronze.events_quarantine rows (``record_type, reason, ingest_batch``).
        ingest_report: the run's ingest report (``rows_in, accepted, quarantined,
            duplicates_removed, reasons``) when this run ingested; it wins, since duplicates are
            counted only by the job.

    Returns:
        ``{"source", "rows_in", "accepted", "quarantined", "duplicates", "reasons", "balanced"}``:
        ``source`` "ingest report" or "tables" (all batches; duplicates then None: not stored in
        any table, so rows in is unknown), ``reasons`` reason -> events quarantined, largest first,
        ``balanced`` whether rows in equals the sum (None when unknown).
    """
    if ingest_report:
        r = ingest_report
        reasons = dict(sorted(dict(r.get("reasons") or {}).items(), key=lambda kv: (-kv[1], kv[0])))
        total = int(r["accepted"]) + int(r["quarantined"]) + int(r["duplicates_removed"])
        return {"source": "ingest report", "rows_in": int(r["rows_in"]), "accepted": int(r["accepted"]),
                "quarantined": int(r["quarantined"]), "duplicates": int(r["duplicates_removed"]),
                "reasons": reasons, "balanced": total == int(r["rows_in"])}
    accepted = None if events_batches is None else int(len(events_batches))
    events_q = (quarantine[quarantine.record_type == "event"] if quarantine is not None and not quarantine.empty
                else pd.DataFrame(columns=["reason"]))
    counts = events_q.groupby("reason").size().sort_values(ascending=False) if not events_q.empty else pd.Series(dtype=int)
    reasons = dict(sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0])))
    quarantined = None if quarantine is None else int(len(events_q))
    return {"source": "tables", "rows_in": None, "accepted": accepted, "quarantined": quarantined,
            "duplicates": None, "reasons": reasons, "balanced": None}


def sample_users(user_ids: Iterable[str], n: int, seed: int) -> list[str]:
    """The ``n`` users with the smallest sha256 of ``"<seed>:<user_id>"`` (a stable sample that
    does not depend on the order or the other ids), sorted by that hash."""
    if n <= 0:
        return []
    keyed = sorted((hashlib.sha256(f"{seed}:{u}".encode()).hexdigest(), u) for u in set(user_ids) if u)
    return [u for _, u in keyed[:n]]


def _round(values, digits: int = 3) -> list:
    return [round(float(v), digits) for v in values]


def user_lookup(users: list[str], windows: Optional[pd.DataFrame], scores: Optional[pd.DataFrame],
                recommendations: Optional[pd.DataFrame], top: int = 3) -> dict:
    """What the page's lookup shows for each sampled (pseudonymous) user.

    Args:
        users: the sample (see :func:`sample_users`).
        windows: silver.user_interest_windows rows (``user_id, window_start, window_categories,
            window_shares``).
        scores: gold.user_interest_scores rows of one as-of date (``user_id, as_of, p_switch,
            forecast_stage, explanation``; others ignored).
        recommendations: gold.recommendations rows of that date (``user_id, rank, category,
            reason, explanation``).
        top: categories kept per window of the trajectory.

    Returns:
        user id -> ``{"trajectory": [[window start, [categories], [shares]], ...],
        "score": {...} or None, "recommendations": [[rank, category, reason, explanation], ...]}``.
    """
    wanted = set(users)
    out = {u: {"trajectory": [], "score": None, "recommendations": []} for u in users}
    if windows is not None and not windows.empty:
        mine = windows[windows.user_id.isin(wanted)].sort_values(["user_id", "window_start"])
        for u, start, cats, shares in zip(mine.user_id, mine.window_start, mine.window_categories, mine.window_shares):
            pairs = sorted(zip(list(cats), list(shares)), key=lambda p: -p[1])[:top]
            out[u]["trajectory"].append([pd.Timestamp(start).strftime("%Y-%m-%d"),
                                         [c for c, _ in pairs], _round(s for _, s in pairs)])
    if scores is not None and not scores.empty:
        for row in scores[scores.user_id.isin(wanted)].itertuples(index=False):
            out[row.user_id]["score"] = {
                "as_of": pd.Timestamp(row.as_of).strftime("%Y-%m-%d"), "p_switch": round(float(row.p_switch), 3),
                "forecast_stage": row.forecast_stage, "explanation": row.explanation}
    if recommendations is not None and not recommendations.empty:
        mine = recommendations[recommendations.user_id.isin(wanted)].sort_values(["user_id", "rank"])
        for u, rank, cat, reason, why in zip(mine.user_id, mine["rank"], mine.category, mine.reason, mine.explanation):
            out[u]["recommendations"].append([int(rank), cat, reason, why])
    return out
