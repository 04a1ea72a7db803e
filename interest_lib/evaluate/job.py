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
from interest_lib.metrics import js_divergence, sliced_ranking_metrics, sparse_to_dense, stage_accuracy
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
            lines.append(f"  target {t['task']} {t['metric']} ({t['slice']}): {t['model']} {t['model_value']:.4f} vs best "
                         f"baseline {t['baseline']} {t['baseline_value']:.4f} -> {t['gain']:+.1%} "
                         f"(need {t['need']:+.0%}) {'MET' if t['met'] else 'NOT MET'}")
        return "\n".join(lines)


def _rows_for(model: str, kind: str, task: str, metrics: dict, run_id: str) -> list[dict]:
    out = []
    for slice_, values in metrics.items():
        for metric, value in values.items():
            if metric != "n":
                out.append({"model": model, "kind": kind, "task": task, "slice": slice_, "metric": metric,
                            "value": float(value), "rows": int(values.get("n", 0)), "run_id": run_id})
    return out


def _check_targets(report: EvaluateReport, targets: dict) -> None:
    """Compare each model with the best baseline on every target (``evaluate.targets``:
    task -> slice -> metric -> required relative gain)."""
    flat = [(task, slice_, metric, need) for task, slices in targets.items()
            for slice_, metrics in slices.items() for metric, need in metrics.items()]
    for task, slice_, metric, need in flat:
        rows = [r for r in report.rows if (r["task"], r["slice"], r["metric"]) == (task, slice_, metric)]
        models = [r for r in rows if r["kind"] == "model"]
        baselines = [r for r in rows if r["kind"] == "baseline"]
        if not models or not baselines:
            continue
        lower_better = metric == "js"
        best = (min if lower_better else max)(baselines, key=lambda r: r["value"])
        for m in models:
            gain = ((best["value"] - m["value"]) if lower_better else (m["value"] - best["value"])) / max(best["value"], 1e-12)
            report.targets.append({"task": task, "slice": slice_, "metric": metric, "model": m["model"],
                                   "model_value": m["value"], "baseline": best["model"],
                                   "baseline_value": best["value"], "gain": gain, "need": need, "met": gain >= need})


def evaluate_runs(table_path: str, version: int, runs: dict[str, RunStore], device: str = "cpu") -> list[dict]:
    """Metric rows of every baseline and of the given trained runs (task -> run store)."""
    from interest_lib.models.inference import load_trained, predict_arrays

    train = load_split(table_path, version, "train", SEQUENCE_COLUMNS)
    test = load_split(table_path, version, "test", SEQUENCE_COLUMNS)
    num_categories = int(max(train["ev_category"].max(), train["win_category"].max(), train["next_category"].max(),
                             test["ev_category"].max(), test["win_category"].max(), test["next_category"].max()))
    target_dist = sparse_to_dense(test["next_dist_category"], test["next_dist_share"], num_categories)
    rows = []
    sizes = None
    for name, baseline in fit_baselines(train, num_categories).items():
        ranking = sliced_ranking_metrics(baseline.next_scores(test), test["next_category"], test["is_switch"])
        rows += _rows_for(name, "baseline", "migration", ranking, "")
        js = float(js_divergence(baseline.forecast(test), target_dist).mean())
        rows += _rows_for(name, "baseline", "evolution", {"all": {"js": js, "n": len(target_dist)}}, "")
    for task, store in runs.items():
        model, record = load_trained(store.model, device)
        sizes = record["sizes"]
        if sizes["categories"] < num_categories:
            raise ValueError(f"run {store.run_id} knows {sizes['categories']} categories, the table has {num_categories}")
        out = predict_arrays(model, test)
        pad = lambda a: a[:, :num_categories + 1]  # noqa: E731  (the model's vocabulary may be larger)
        if task == "migration":
            ranking = sliced_ranking_metrics(pad(out["next_probs"]), test["next_category"], test["is_switch"])
            rows += _rows_for(record["model_name"], "model", task, ranking, store.run_id)
        else:
            forecast = pad(out["forecast"])
            metrics = {"js": float(js_divergence(forecast, target_dist).mean()),
                       "stage_acc": stage_accuracy(out["stage"], test["next_stage"]), "n": len(forecast)}
            rows += _rows_for(record["model_name"], "model", task, {"all": metrics}, store.run_id)
    return rows


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
    report.rows = evaluate_runs(tables.path(GOLD_TRAINING_SEQUENCES), version, runs)
    _check_targets(report, conf.evaluate.targets)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    df = spark.createDataFrame(
        [{**r, "evaluation_id": evaluation_id, "table_version": version, "evaluated_at": now} for r in report.rows],
        CONTRACTS[GOLD_MODEL_METRICS].ddl())
    tables.write(df, GOLD_MODEL_METRICS, mode="append", txn=Txn(f"evaluate-{evaluation_id}"))
    return report


def _table_version(run: RunStore) -> int:
    return int(run.read_lineage()["table_version"])
