"""One week of drift rows: the served model and the best baseline on the latest complete week.

The week: the test-split samples of the current gold.training_sequences version whose cut-off is
the latest one (their labels lie in the following window, complete by the split's construction:
see :func:`interest_lib.features.sequences.split_bounds`). The model predicts those samples as it
does when scoring; every baseline is fitted on the version's train split and scored on the same
samples; the best baseline on the monitored metric (``monitor.task/slice/metric``) is the bar.
Each value carries the user-clustered bootstrap 95% CI of its mean (as ``interest evaluate``'s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Optional

import numpy as np

from interest_lib.logs import get_logger

log = get_logger(__name__)

#: ``series`` of the drift rows in gold.model_metrics.
DRIFT_SERIES = "drift"
#: Metrics where lower values are better.
LOWER_IS_BETTER = ("js",)


def latest_week(test: dict) -> np.ndarray:
    """Row mask of the samples with the latest cut-off (``cutoff``: epoch microseconds)."""
    cutoff = np.asarray(test["cutoff"])
    return cutoff == cutoff.max() if len(cutoff) else np.zeros(0, dtype=bool)


def _fit(a: np.ndarray, width: int) -> np.ndarray:
    """Score columns cut or zero-padded to ``width`` (a model knows fewer or more categories
    than the table: an unknown category is never predicted)."""
    if a.shape[1] >= width:
        return a[:, :width]
    return np.pad(a, ((0, 0), (0, width - a.shape[1])))


def week_values(predictor, train: dict, week: dict, task: str, slice_: str, metric: str,
                batch_size: int = 1024, device: str = "cpu") -> tuple[dict, np.ndarray]:
    """Per-row values of ``metric`` on the week's samples for the model (key ``"model"``) and
    every baseline (their names), and the rows' user ids (the bootstrap's clusters)."""
    from interest_lib.evaluate.job import (
        MAJORITY_STAGE, _evolution_outcomes, _ranking_outcomes, majority_stage,
    )
    from interest_lib.metrics import sparse_to_dense
    from interest_lib.models import INPUT_COLUMNS
    from interest_lib.models.baselines import fit_baselines
    from interest_lib import schema as S

    n_cat = int(max(train["ev_category"].max(), train["win_category"].max(), train["next_category"].max(),
                    week["ev_category"].max(), week["win_category"].max(), week["next_category"].max()))
    out = predictor.predict({c: week[c] for c in INPUT_COLUMNS}, batch_size, device)
    per: dict = {}
    users = week[S.USER_ID]
    if task == "migration":
        outcomes = {"model": _ranking_outcomes(_fit(out["next_probs"], n_cat + 1), week)}
        for name, b in fit_baselines(train, n_cat).items():
            outcomes[name] = _ranking_outcomes(b.next_scores(week), week)
    else:
        target = sparse_to_dense(week["next_dist_category"], week["next_dist_share"], n_cat)
        outcomes = {"model": _evolution_outcomes(_fit(out["forecast"], n_cat + 1), target, out["stage"],
                                                 week["next_stage"])}
        if metric == "stage_acc":
            majority = np.full(len(users), majority_stage(train["next_stage"]))
            outcomes[MAJORITY_STAGE] = _evolution_outcomes(None, target, majority, week["next_stage"])
        else:
            for name, b in fit_baselines(train, n_cat).items():
                forecast = b.forecast(week)
                if forecast is not None:
                    outcomes[name] = _evolution_outcomes(forecast, target, None, week["next_stage"])
    mask = None
    for name, slices in outcomes.items():
        values, mask = slices[slice_][metric]
        per[name] = np.asarray(values, dtype=np.float64)
    return per, users[mask]


def drift_rows(per: dict, users: np.ndarray, model_name: str, run_id: str, task: str, slice_: str,
               metric: str, week_start: dt.datetime, table_version: int, n_boot: int = 1000,
               seed: int = 0) -> list[dict]:
    """gold.model_metrics rows of one drift week: the model and the best baseline (by the week's
    mean of ``metric``), each with its bootstrap 95% CI; [] when the week has no rows."""
    from interest_lib.evaluate.event_protocol import ClusterBootstrap

    if not len(users) or "model" not in per:
        return []
    means = {name: float(v.mean()) for name, v in per.items() if name != "model" and len(v)}
    if not means:
        return []
    pick = min if metric in LOWER_IS_BETTER else max
    best = pick(means, key=means.get)
    boot = ClusterBootstrap.draw(users, n_boot, seed)
    evaluation_id = "drift-" + hashlib.sha256(
        f"{run_id}|{table_version}|{week_start.isoformat()}|{task}|{slice_}|{metric}".encode()).hexdigest()[:12]
    rows = []
    for name, kind, label in (("model", "model", model_name), (best, "baseline", best)):
        value, lo, hi = boot.ci(per[name], np.zeros(len(per[name])))
        rows.append({"evaluation_id": evaluation_id, "model": label, "kind": kind, "task": task,
                     "slice": slice_, "metric": metric, "value": value, "rows": int(len(per[name])),
                     "run_id": run_id if kind == "model" else "", "table_version": int(table_version),
                     "ci_low": lo, "ci_high": hi, "series": DRIFT_SERIES, "week_start": week_start})
    return rows


def week_drift(table_path: str, version: int, predictor, task: str, slice_: str, metric: str,
               batch_size: int = 1024, device: str = "cpu", n_boot: int = 1000) -> list[dict]:
    """The drift rows of the latest complete week of gold.training_sequences@``version`` (see the
    module doc) for ``predictor`` (a trained model's :class:`~interest_lib.scoring.predictors.Predictor`-like
    object with ``predict``, ``name``, ``version``)."""
    from interest_lib.models import SEQUENCE_COLUMNS
    from interest_lib.storage.arrays import read_arrays
    from interest_lib import schema as S

    train = read_arrays(table_path, version, SEQUENCE_COLUMNS, {"split": "train"})
    test = read_arrays(table_path, version, SEQUENCE_COLUMNS + [S.USER_ID, "cutoff"], {"split": "test"})
    mask = latest_week(test)
    week = {k: v[mask] for k, v in test.items()}
    start = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(week["cutoff"][0]))
    per, users = week_values(predictor, train, week, task, slice_, metric, batch_size, device)
    rows = drift_rows(per, users, predictor.name, predictor.version, task, slice_, metric, start, version, n_boot)
    if rows:
        m, b = rows
        log.info("drift week of %s: %s %s %s = %.4f [%.4f, %.4f] vs best baseline %s %.4f [%.4f, %.4f] (%d samples)",
                 start.date(), m["model"], slice_, metric, m["value"], m["ci_low"], m["ci_high"], b["model"],
                 b["value"], b["ci_low"], b["ci_high"], m["rows"])
    return rows

