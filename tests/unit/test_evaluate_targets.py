"""The window protocol's target checks: gains vs the best baseline, stage accuracy in points above
the majority stage, and the user-clustered bootstrap CI that MET requires."""

import numpy as np
import pytest

from interest_lib.evaluate.job import (
    EvaluateReport, Outcomes, _check_targets, _evolution_outcomes, majority_stage,
)

pytestmark = pytest.mark.unit


def _report(outcomes: Outcomes, per_model: dict) -> EvaluateReport:
    report = EvaluateReport(evaluation_id="t", table_version=0)
    for (model, kind), means in per_model.items():
        for metric, value in means.items():
            report.rows.append({"model": model, "kind": kind, "task": "evolution", "slice": "all",
                                "metric": metric, "value": value, "rows": 0, "run_id": ""})
    return report


def test_majority_stage_ignores_unknown_labels():
    assert majority_stage(np.array([0, 0, 0, 2, 3, 3])) == 3
    assert majority_stage(np.array([0, 0])) == 1


def test_stage_target_is_in_points_and_met_only_with_a_ci_above_zero():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(200).astype(str), 5)
    next_stage = rng.integers(1, 5, size=len(users))
    next_stage[::10] = 0  # unknown labels are left out of the accuracy
    majority = np.full(len(users), 2)
    good = np.where(rng.random(len(users)) < 0.6, next_stage, 1)  # right ~60% of the time
    outcomes = Outcomes()
    dist = np.zeros((len(users), 3))
    means = {name: outcomes.add(name, "evolution", _evolution_outcomes(None, dist, pred, next_stage), users)
             for name, pred in (("majority_stage", majority), ("gru", good))}
    known = next_stage != 0
    assert means["gru"]["all"]["stage_acc"] == pytest.approx((good[known] == next_stage[known]).mean())
    assert means["gru"]["all"]["n"] == known.sum()
    report = _report(outcomes, {("majority_stage", "baseline"): {"stage_acc": means["majority_stage"]["all"]["stage_acc"]},
                                ("gru", "model"): {"stage_acc": means["gru"]["all"]["stage_acc"]}})
    _check_targets(report, {"evolution": {"all": {"stage_acc": 0.10}}}, outcomes, n_boot=300)
    (t,) = report.targets
    points = means["gru"]["all"]["stage_acc"] - means["majority_stage"]["all"]["stage_acc"]
    assert t["absolute"] and t["gain"] == pytest.approx(points)  # points, not a relative gain
    assert t["lo"] < t["gain"] < t["hi"] and t["lo"] > 0.10
    assert t["met"] and "pts" in report.render()


def test_a_js_gain_whose_ci_spans_zero_is_not_met():
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(30).astype(str), 2)
    outcomes = Outcomes()
    every = np.ones(len(users), dtype=bool)
    base = rng.random(len(users))
    model = base - 0.2 * base + rng.normal(0, 1.0, len(users))  # 20% lower on average, very noisy
    for name, js in (("persistence", base), ("gru", model)):
        outcomes.add(name, "evolution", {"all": {"js": (js, every)}}, users)
    report = _report(outcomes, {("persistence", "baseline"): {"js": base.mean()}, ("gru", "model"): {"js": model.mean()}})
    _check_targets(report, {"evolution": {"all": {"js": 0.10}}}, outcomes, n_boot=300)
    (t,) = report.targets
    assert t["gain"] == pytest.approx((base.mean() - model.mean()) / base.mean())
    assert t["lo"] < 0 < t["hi"]
    assert not t["met"]


def test_every_metric_row_gets_the_user_clustered_bootstrap_interval_of_its_value():
    from interest_lib.evaluate.job import value_cis

    # 100 users x 4 rows; a model right on all rows of half the users: mean 0.5, and the
    # clusters (not the 400 rows) set the width: about ±1.96·0.5/sqrt(100) = ±0.098
    users = np.repeat(np.arange(100).astype(str), 4)
    hits = np.repeat(np.tile([1.0, 0.0], 50), 4)
    outcomes = Outcomes()
    means = outcomes.add("m", "evolution", {"all": {"stage_acc": (hits, np.ones(400, dtype=bool))}}, users)
    outcomes.add("b", "evolution", {"all": {"stage_acc": (np.full(400, 0.3), np.ones(400, dtype=bool))}}, users)
    rows = [{"model": "m", "task": "evolution", "slice": "all", "metric": "stage_acc", "value": means["all"]["stage_acc"]},
            {"model": "b", "task": "evolution", "slice": "all", "metric": "stage_acc", "value": 0.3},
            {"model": "gone", "task": "evolution", "slice": "all", "metric": "stage_acc", "value": 0.1}]
    value_cis(rows, outcomes)
    m, b, gone = rows
    assert m["ci_low"] < 0.5 < m["ci_high"] and 0.16 < m["ci_high"] - m["ci_low"] < 0.24
    assert (b["ci_low"], b["ci_high"]) == pytest.approx((0.3, 0.3))
    assert np.isnan(gone["ci_low"]) and np.isnan(gone["ci_high"])  # no per-row values: no interval
