"""``interest monitor``: the drift series of gold.model_metrics and the retrain decision.

No Spark: the table is read with the storage layer's snapshot reader. One point per week (the
newest drift evaluation of that week): the model's value and the best baseline's, each with its
95% CI. The model is *below* in a week when its value is worse than the baseline's (lower, or
higher for js). The verdict is "retrain" (exit 1) when it is below on each of the latest
``monitor.weeks`` weeks; otherwise exit 0, also when there is no series yet (the message says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from interest_lib.monitor.drift import DRIFT_SERIES, LOWER_IS_BETTER

#: Columns of gold.model_metrics the series needs.
SERIES_COLUMNS = ["evaluation_id", "model", "kind", "task", "slice", "metric", "value", "rows",
                  "evaluated_at", "ci_low", "ci_high", "series", "week_start"]


@dataclass
class WeekPoint:
    """One week of the series."""

    week_start: str
    model: str
    model_value: float
    model_low: float
    model_high: float
    baseline: str
    baseline_value: float
    baseline_low: float
    baseline_high: float
    rows: int
    below: bool


@dataclass
class MonitorReport:
    """The series, the decision and its exit code (1: retrain)."""

    task: str
    slice: str
    metric: str
    weeks_needed: int
    points: list = field(default_factory=list)
    below_streak: int = 0
    retrain: bool = False
    message: str = ""

    @property
    def exit_code(self) -> int:
        """1 when the model should be retrained, else 0."""
        return 1 if self.retrain else 0

    def render(self) -> str:
        """The trend as printed by ``interest monitor``."""
        lines = [f"drift of {self.task} {self.slice} {self.metric} (model vs best baseline, 95% CI; "
                 f"retrain after {self.weeks_needed} week(s) below)"]
        for p in self.points:
            lines.append(f"  week of {p.week_start}: {p.model} {p.model_value:.4f} [{p.model_low:.4f}, "
                         f"{p.model_high:.4f}] vs {p.baseline} {p.baseline_value:.4f} [{p.baseline_low:.4f}, "
                         f"{p.baseline_high:.4f}], n {p.rows}{'  BELOW' if p.below else ''}")
        lines.append(self.message)
        return "\n".join(lines)


def _f(v) -> float:
    return float("nan") if v is None or pd.isna(v) else float(v)


def drift_points(metrics: Optional[pd.DataFrame], task: str, slice_: str, metric: str) -> list[WeekPoint]:
    """The weekly points of the series (oldest first) from gold.model_metrics rows
    (:data:`SERIES_COLUMNS`); a week evaluated more than once keeps its newest evaluation."""
    if metrics is None or metrics.empty or "series" not in metrics.columns:
        return []
    rows = metrics[(metrics.series == DRIFT_SERIES) & (metrics.task == task) & (metrics.slice == slice_)
                   & (metrics.metric == metric) & metrics.week_start.notna()]
    points = []
    for week, group in rows.groupby("week_start"):
        newest = group[group.evaluation_id == group.sort_values("evaluated_at").evaluation_id.iloc[-1]]
        model, base = newest[newest.kind == "model"], newest[newest.kind == "baseline"]
        if model.empty or base.empty:
            continue
        m, b = model.iloc[0], base.iloc[0]
        worse = (m.value > b.value) if metric in LOWER_IS_BETTER else (m.value < b.value)
        points.append(WeekPoint(pd.Timestamp(week).strftime("%Y-%m-%d"), m.model, _f(m.value), _f(m.ci_low),
                                _f(m.ci_high), b.model, _f(b.value), _f(b.ci_low), _f(b.ci_high), int(m.rows),
                                bool(worse)))
    return sorted(points, key=lambda p: p.week_start)


def judge(points: list[WeekPoint], weeks: int, task: str, slice_: str, metric: str) -> MonitorReport:
    """The decision over the series: retrain when the model is below the best baseline on each
    of the latest ``weeks`` weeks."""
    if weeks < 1:
        raise ValueError(f"monitor.weeks must be at least 1, got {weeks}")
    report = MonitorReport(task, slice_, metric, weeks, list(points))
    if not points:
        report.message = (f"no drift series yet for {task} {slice_} {metric} in gold.model_metrics: each "
                          "`interest score` with a trained model appends one week (monitor.drift); nothing to judge")
        return report
    streak = 0
    for p in reversed(points):
        if not p.below:
            break
        streak += 1
    report.below_streak = streak
    report.retrain = streak >= weeks
    last = points[-1]
    if report.retrain:
        report.message = (f"RETRAIN: the model has been below the best baseline for {streak} week(s) in a row "
                          f"(monitor.weeks = {weeks}); latest week {last.week_start}: {last.model_value:.4f} vs "
                          f"{last.baseline} {last.baseline_value:.4f}")
    elif streak:
        report.message = (f"ok: below the best baseline for {streak} week(s), fewer than monitor.weeks = {weeks}")
    else:
        report.message = (f"ok: the model is at or above the best baseline in the latest week ({last.week_start})")
    return report


def run_monitor(warehouse: str, task: str, slice_: str, metric: str, weeks: int) -> MonitorReport:
    """Read gold.model_metrics (latest version) and judge its drift series."""
    from interest_lib.storage.catalog import GOLD_MODEL_METRICS, table_path
    from interest_lib.storage.snapshot import is_delta_table, open_snapshot

    path = table_path(warehouse, GOLD_MODEL_METRICS)
    frame = None
    if is_delta_table(path):
        snap = open_snapshot(path)
        if "series" in snap.schema.names:
            frame = snap.read(SERIES_COLUMNS).to_pandas()
    return judge(drift_points(frame, task, slice_, metric), weeks, task, slice_, metric)


__all__ = ["MonitorReport", "WeekPoint", "drift_points", "judge", "run_monitor", "SERIES_COLUMNS"]
