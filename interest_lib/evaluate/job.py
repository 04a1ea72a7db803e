"""``interest evaluate``: every baseline and trained model on the test split, into gold.model_metrics.

Time-based split only: baselines are fitted on the ``train`` split and everything is scored on
the ``test`` split of the models' pinned gold.training_sequences version (labels after all
training data). Migration: HR@1/5/10, NDCG@10 and MRR of the next category, overall and on the
switch slice. Evolution: mean JS divergence of the next-window forecast (vs persistence) and
the stage accuracy. The comparison is printed with the targets of ``evaluate.targets``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from pyspark.sql import SparkSession

from interest_lib.conf import Config
from interest_lib.metrics import js_divergence, per_target_metrics, sparse_to_dense, stage_hits, target_ranks
from interest_lib.logs import get_logger
from interest_lib.models import SEQUENCE_COLUMNS
from interest_lib.models.baselines import fit_baselines
from interest_lib.storage import Tables, Txn
from interest_lib.storage.catalog import CONTRACTS, GOLD_MODEL_METRICS, GOLD_TRAINING_SEQUENCES
from interest_lib.runs import fs
from interest_lib.runs.store import RunStore, latest_run

log = get_logger(__name__)

def load_split(table_path: str, version: int, split: str, columns: list[str]) -> dict[str, np.ndarray]:
    """One split of the pinned table as numpy arrays, read by the storage layer's snapshot reader
    with the same column conversion as the training feeds (:mod:`interest_lib.storage.arrays`)."""
    from interest_lib.storage.arrays import read_arrays

    return read_arrays(table_path, version, columns, {"split": split})


@dataclass
class EvaluateReport:
    """The metrics of one evaluation, as rows of gold.model_metrics, and the target checks."""

    evaluation_id: str
    table_version: int
    rows: list = field(default_factory=list)
    targets: list = field(default_factory=list)

    def value(self, model: str, slice_: str, metric: str) -> Optional[float]:
        """One metric of one model (None when absent)."""
        for r in self.rows:
            if (r["model"], r["slice"], r["metric"]) == (model, slice_, metric):
                return r["value"]
        return None

    def render(self) -> str:
        """The comparison table printed by ``interest evaluate`` and ``interest run``."""
        lines = [f"model evaluation {self.evaluation_id} on {GOLD_TRAINING_SEQUENCES}@{self.table_version} (test split)"]
        for task, metrics in (("migration", ["hr@1", "hr@5", "hr@10", "ndcg@10", "mrr"]), ("evolution", ["js", "stage_acc"])):
            models = list(dict.fromkeys(r["model"] for r in self.rows if r["task"] == task))
            if not models:
                continue
            slices = ["all", "switch"] if task == "migration" else ["all"]
            header = "".join(f"{s[:3] + ':' + m:>12}" for s in slices for m in metrics)
            lines.append(f"  {task:<22}{header}")
            for model in models:
                cells = []
                for s in slices:
                    for m in metrics:
                        v = self.value(model, s, m)
                        cells.append(f"{'':4}{v:8.4f}" if v is not None and v == v else f"{'':4}{'-':>8}")
                lines.append(f"  {model:<22}" + "".join(cells))
        for t in self.targets:
            unit = (lambda v: f"{100 * v:+.1f} pts") if t.get("absolute") else (lambda v: f"{v:+.1%}")
            ci = f" [95% CI {unit(t['lo'])}, {unit(t['hi'])}]" if t.get("lo") == t.get("lo") else ""
            lines.append(f"  target {t['task']} {t['metric']} ({t['slice']}): {t['model']} {t['model_value']:.4f} vs best "
                         f"baseline {t['baseline']} {t['baseline_value']:.4f} -> {unit(t['gain'])}{ci} "
                         f"(need {unit(t['need'])}) {'MET' if t['met'] else 'NOT MET'}")
        return "\n".join(lines)


def _rows_for(model: str, kind: str, task: str, metrics: dict, run_id: str) -> list[dict]:
    out = []
    for slice_, values in metrics.items():
        for metric, value in values.items():
            if metric != "n":
                out.append({"model": model, "kind": kind, "task": task, "slice": slice_, "metric": metric,
                            "value": float(value), "rows": int(values.get("n", 0)), "run_id": run_id})
    return out


#: ``series`` of gold.model_metrics rows written by ``interest evaluate`` (drift rows: "drift").
TEST_SERIES = "test"
#: Metrics compared in points (model - baseline) rather than as a relative gain.
ABSOLUTE_TARGETS = ("stage_acc",)
MAJORITY_STAGE = "majority_stage"


@dataclass
class Outcomes:
    """Per-row values behind every metric row, kept for the paired bootstrap CIs: ``values``
    maps (model, task, slice, metric) to one value per test row of that slice, ``users`` maps
    (task, slice, metric) to those rows' user ids (the bootstrap's clusters)."""

    values: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)

    def add(self, model: str, task: str, per_slice: dict, users: dict) -> dict:
        """Record per-row values (slice -> metric -> array, users: slice -> mask) and return
        their means as metric dicts (slice -> metric -> mean, plus ``n``)."""
        means = {}
        for slice_, metrics in per_slice.items():
            means[slice_] = {}
            for metric, (values, mask) in metrics.items():
                self.values[(model, task, slice_, metric)] = values
                self.users.setdefault((task, slice_, metric), users[mask])
                means[slice_][metric] = float(values.mean()) if len(values) else float("nan")
                means[slice_].setdefault("n", int(len(values)))
        return means


def _ranking_outcomes(scores: np.ndarray, test: dict) -> dict:
    """slice -> metric -> (per-row values, row mask) of the next-category ranking."""
    per = per_target_metrics(target_ranks(scores, test["next_category"]))
    every = np.ones(len(test["next_category"]), dtype=bool)
    switch = np.asarray(test["is_switch"], dtype=bool)
    return {"all": {m: (v, every) for m, v in per.items()},
            "switch": {m: (v[switch], switch) for m, v in per.items()}}


def _evolution_outcomes(forecast: Optional[np.ndarray], target_dist: np.ndarray,
                        stage: Optional[np.ndarray], next_stage: np.ndarray) -> dict:
    """{"all": metric -> (per-row values, row mask)}: JS of the forecast over every row, stage
    correctness over the rows whose label stage is known (``next_stage != 0``)."""
    out = {}
    if forecast is not None:
        out["js"] = (js_divergence(forecast, target_dist), np.ones(len(target_dist), dtype=bool))
    if stage is not None:
        out["stage_acc"] = stage_hits(stage, next_stage)
    return {"all": out}


def majority_stage(train_stage: np.ndarray) -> int:
    """The most frequent known stage (index > 0) of the train split (1 when none is known)."""
    known = np.asarray(train_stage)[np.asarray(train_stage) != 0]
    return int(np.bincount(known).argmax()) if len(known) else 1


def _check_targets(report: EvaluateReport, targets: dict, outcomes: Optional[Outcomes] = None,
                   n_boot: int = 1000) -> None:
    """Compare each model with the best baseline on every target (``evaluate.targets``:
    task -> slice -> metric -> required gain: relative, or in points for stage_acc), with the
    user-clustered paired bootstrap 95% CI of the gain when the per-row values are known."""
    from interest_lib.evaluate.event_protocol import ClusterBootstrap

    flat = [(task, slice_, metric, need) for task, slices in targets.items()
            for slice_, metrics in slices.items() for metric, need in metrics.items()]
    for task, slice_, metric, need in flat:
        rows = [r for r in report.rows if (r["task"], r["slice"], r["metric"]) == (task, slice_, metric)]
        models = [r for r in rows if r["kind"] == "model"]
        baselines = [r for r in rows if r["kind"] == "baseline"]
        if not models or not baselines:
            continue
        lower_better = metric == "js"
        absolute = metric in ABSOLUTE_TARGETS
        best = (min if lower_better else max)(baselines, key=lambda r: r["value"])
        scale = 1.0 if absolute else max(best["value"], 1e-12)
        sign = -1.0 if lower_better else 1.0
        users = outcomes.users.get((task, slice_, metric)) if outcomes else None
        boot = ClusterBootstrap.draw(users, n_boot) if users is not None and len(users) else None
        for m in models:
            gain = sign * (m["value"] - best["value"]) / scale
            lo = hi = float("nan")
            if boot is not None:
                a = outcomes.values.get((m["model"], task, slice_, metric))
                b = outcomes.values.get((best["model"], task, slice_, metric))
                if a is not None and b is not None:
                    _, lo_d, hi_d = boot.ci(a, b)
                    lo, hi = sorted((sign * lo_d / scale, sign * hi_d / scale))
            report.targets.append({"task": task, "slice": slice_, "metric": metric, "model": m["model"],
                                   "model_value": m["value"], "baseline": best["model"],
                                   "baseline_value": best["value"], "gain": gain, "lo": lo, "hi": hi,
                                   "absolute": absolute, "need": need,
                                   "met": gain >= need and not (lo <= 0)})


def value_cis(rows: list[dict], outcomes: Outcomes, n_boot: int = 1000, seed: int = 0) -> None:
    """Set ``ci_low`` / ``ci_high`` of every metric row: the user-clustered bootstrap 95%
    percentile interval of its mean (the same resamples for every model of one task × slice ×
    metric, as the paired CIs of the gains use). NaN where no per-row values are known."""
    from interest_lib.evaluate.event_protocol import ClusterBootstrap

    boots: dict = {}
    for r in rows:
        key = (r["task"], r["slice"], r["metric"])
        values = outcomes.values.get((r["model"], *key))
        users = outcomes.users.get(key)
        r["ci_low"] = r["ci_high"] = float("nan")
        if values is None or users is None or not len(values):
            continue
        if key not in boots:
            boots[key] = ClusterBootstrap.draw(users, n_boot, seed)
        _, lo, hi = boots[key].ci(values, np.zeros(len(values)))
        r["ci_low"], r["ci_high"] = lo, hi


def evaluate_runs(table_path: str, version: int, runs: dict[str, RunStore], device: str = "cpu"
                  ) -> tuple[list[dict], Outcomes]:
    """Metric rows of every baseline and of the given trained runs (task -> run store), and the
    per-row values behind them (:class:`Outcomes`, for the CIs). Stage accuracy has one
    baseline: the train split's majority stage."""
    from interest_lib.models.inference import load_trained, predict_arrays
    from interest_lib import schema as S

    train = load_split(table_path, version, "train", SEQUENCE_COLUMNS)
    validation = load_split(table_path, version, "validation", SEQUENCE_COLUMNS)
    test = load_split(table_path, version, "test", SEQUENCE_COLUMNS + [S.USER_ID])
    users = test[S.USER_ID]
    num_categories = int(max(int(split[c].max()) if len(split[c]) else 0 for split in (train, validation, test)
                             for c in ("ev_category", "win_category", "next_category")))
    target_dist = sparse_to_dense(test["next_dist_category"], test["next_dist_share"], num_categories)
    rows, outcomes = [], Outcomes()
    baselines = fit_baselines(train, num_categories, validation)
    for name, baseline in baselines.items():
        if hasattr(baseline, "settings"):
            n_val = len(validation["next_category"])
            log.info("baseline %s: %s (%s)", name, baseline.settings(),
                     f"chosen on the validation split, {n_val:,} rows" if n_val else "defaults: the validation split is empty")
        ranking = outcomes.add(name, "migration", _ranking_outcomes(baseline.next_scores(test), test), users)
        rows += _rows_for(name, "baseline", "migration", ranking, "")
        js = outcomes.add(name, "evolution", _evolution_outcomes(baseline.forecast(test), target_dist, None,
                                                                 test["next_stage"]), users)
        rows += _rows_for(name, "baseline", "evolution", js, "")
    majority = np.full(len(users), majority_stage(train["next_stage"]))
    stage = outcomes.add(MAJORITY_STAGE, "evolution", _evolution_outcomes(None, target_dist, majority,
                                                                          test["next_stage"]), users)
    rows += _rows_for(MAJORITY_STAGE, "baseline", "evolution", stage, "")
    for task, store in runs.items():
        model, record = load_trained(store.model, device)
        sizes = record["sizes"]
        if sizes["categories"] < num_categories:
            raise ValueError(f"run {store.run_id} knows {sizes['categories']} categories, the table has {num_categories}")
        out = predict_arrays(model, test)
        pad = lambda a: a[:, :num_categories + 1]  # noqa: E731  (the model's vocabulary may be larger)
        name = record["model_name"]
        if task == "migration":
            metrics = outcomes.add(name, task, _ranking_outcomes(pad(out["next_probs"]), test), users)
        else:
            metrics = outcomes.add(name, task, _evolution_outcomes(pad(out["forecast"]), target_dist, out["stage"],
                                                                   test["next_stage"]), users)
        rows += _rows_for(name, "model", task, metrics, store.run_id)
    return rows, outcomes


def run_evaluate(spark: SparkSession, conf: Config, tables: Tables) -> EvaluateReport:
    """Evaluate the newest finished runs of both tasks (and all baselines); write gold.model_metrics."""
    store_root = fs.canonical(conf.train.store)
    runs = {task: run for task in ("migration", "evolution") if (run := latest_run(store_root, task))}
    if not runs:
        raise FileNotFoundError(f"no finished training run under {store_root}: run `interest train` first")
    versions = {task: _table_version(run) for task, run in runs.items()}
    version = max(versions.values())
    stale = [t for t, v in versions.items() if v != version]
    for task in stale:
        log.warning("evaluate: the %s run was trained on version %d, not %d: left out (retrain it)", task, versions[task], version)
        runs.pop(task)
    evaluation_id = hashlib.sha256(("|".join(f"{t}={r.run_id}" for t, r in sorted(runs.items())) + f"@{version}").encode()).hexdigest()[:12]
    report = EvaluateReport(evaluation_id=evaluation_id, table_version=version)
    report.rows, outcomes = evaluate_runs(tables.path(GOLD_TRAINING_SEQUENCES), version, runs)
    _check_targets(report, conf.evaluate.targets, outcomes)
    value_cis(report.rows, outcomes)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    df = spark.createDataFrame(
        [{**r, "evaluation_id": evaluation_id, "table_version": version, "evaluated_at": now,
          "series": TEST_SERIES, "week_start": None} for r in report.rows],
        CONTRACTS[GOLD_MODEL_METRICS].ddl())
    tables.write(df, GOLD_MODEL_METRICS, mode="append", txn=Txn(f"evaluate-{evaluation_id}"))
    return report


def _table_version(run: RunStore) -> int:
    return int(run.read_lineage()["table_version"])
