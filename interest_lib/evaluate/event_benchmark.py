"""The event-level protocol end to end: choose baseline settings on a validation period, then
evaluate every baseline once on the test period and compare each with the best baseline.

Validation period: a second cut at the same quantile of the events at or before the main cut;
its targets are the events between the two cuts (users with history before the second cut), and
nothing after the main cut is read. The *best baseline* is the one with the highest NDCG@10 on
all validation targets; the test period is only evaluated after every choice is made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from interest_lib.evaluate.event_protocol import (
    EventLog, Targets, evaluate_model, make_targets, protocol_table, time_cut,
)
from interest_lib.evaluate.metrics import metrics_from_ranks
from interest_lib.models.event_baselines import FIXED, Candidate, personal_frequency_grid, tifu_grid

SELECT_METRIC = "ndcg@10"
PRIORS = (0.01, 0.05, 0.2, 0.5, 1.0)  # repeat/explore weights tried on the chosen personal frequency


@dataclass
class ProtocolResult:
    """What :func:`run_event_protocol` measured."""

    cut: int
    validation_cut: int
    validation: pd.DataFrame  # one row per candidate tried: label, ndcg@10, hr@10, seconds
    chosen: dict[str, Candidate]  # baseline name -> its setting
    best: str  # the best baseline on validation (the bar)
    targets: Targets
    ranks: dict[str, np.ndarray]
    table: pd.DataFrame  # protocol_table on the test period
    seconds: dict[str, float] = field(default_factory=dict)


def validation_cut(log: EventLog, cut: int, quantile: float = 0.8) -> int:
    """The validation period's cut: the ``quantile`` of the times of the events at or before ``cut``."""
    return time_cut(log.ts[:log.upto(cut)], quantile)


def _score(candidate: Candidate, log: EventLog, targets: Targets) -> tuple[np.ndarray, dict, float]:
    start = time.perf_counter()
    ranks = evaluate_model(candidate.build(), log, targets)
    return ranks, metrics_from_ranks(ranks, (10,)), time.perf_counter() - start


def choose_baselines(log: EventLog, targets: Targets, log_line: Callable[[str], None] = print):
    """Validation: the fixed baselines, the personal-frequency grid (decay unit and rate, binary
    baskets) at prior 1e-6, then its prior (repeat/explore weight), then TIFU-KNN's k and alpha on
    top of the chosen personal frequency. Returns (rows tried, chosen setting per baseline,
    best baseline name)."""
    rows, chosen, best_value = [], {}, {}

    def trial(name: str, candidate: Candidate) -> float:
        _, m, secs = _score(candidate, log, targets)
        rows.append({"baseline": name, "setting": candidate.label(), "ndcg@10": m["ndcg@10"],
                     "hr@10": m["hr@10"], "seconds": round(secs, 1)})
        log_line(f"  validation {candidate.label():<80} ndcg@10 {m['ndcg@10']:.5f}  ({secs:.1f}s)")
        if m[SELECT_METRIC] > best_value.get(name, -1.0):
            best_value[name], chosen[name] = m[SELECT_METRIC], candidate
        return m[SELECT_METRIC]

    for name, candidate in FIXED.items():
        trial(name, candidate)
    for candidate in personal_frequency_grid():
        trial("personal_frequency", candidate)
    own = dict(chosen["personal_frequency"].params)
    for prior in PRIORS:
        trial("personal_frequency", Candidate("personal_frequency", {**own, "prior": prior}))
    own = dict(chosen["personal_frequency"].params)
    for candidate in tifu_grid(own):
        trial("tifu_knn", candidate)
    best = max(best_value, key=best_value.get)
    return pd.DataFrame(rows), chosen, best


def run_event_protocol(log: EventLog, quantile: float = 0.8, n_boot: int = 1000, seed: int = 0,
                       log_line: Callable[[str], None] = print,
                       models: dict[str, Callable[[], object]] | None = None,
                       period: str = "test") -> ProtocolResult:
    """Cut, validation-period choice of settings and best baseline, then the test-period table
    (every chosen baseline, slices all / switch / new, difference to the best with its CI).
    ``models``: name -> factory of a protocol model with fixed settings (chosen before, on the
    validation period), fitted at the cut and scored on the test period beside the baselines.
    ``period="validation"`` builds the same table on the validation period instead (models fitted
    at the validation cut): where a model's settings are chosen; nothing after the cut is read."""
    if period not in ("test", "validation"):
        raise ValueError(f"period must be 'test' or 'validation', not {period!r}")
    seconds = {}
    cut = time_cut(log.ts, quantile)
    vcut = validation_cut(log, cut, quantile)
    start = time.perf_counter()
    val_targets = make_targets(log, vcut, end=cut)
    log_line(f"validation: cut {pd.Timestamp(vcut)} -> {pd.Timestamp(cut)}, {len(val_targets):,} targets")
    validation, chosen, best = choose_baselines(log, val_targets, log_line)
    seconds["validation"] = time.perf_counter() - start
    log_line(f"best baseline on validation: {best} = {chosen[best].label()}")

    start = time.perf_counter()
    targets = make_targets(log, cut) if period == "test" else val_targets
    ranks = {}
    for name, candidate in chosen.items():
        ranks[name], _, secs = _score(candidate, log, targets)
        seconds[f"{period} {name}"] = secs
    for name, factory in (models or {}).items():
        t0 = time.perf_counter()
        ranks[name] = evaluate_model(factory(), log, targets)
        seconds[f"{period} {name}"] = time.perf_counter() - t0
        log_line(f"{period} {name}: ndcg@10 {metrics_from_ranks(ranks[name], (10,))['ndcg@10']:.5f} "
                 f"({seconds[f'{period} {name}']:.0f}s)")
    seconds[period] = time.perf_counter() - start
    start = time.perf_counter()
    table = protocol_table(ranks, targets, reference=best, n_boot=n_boot, seed=seed)
    seconds["bootstrap"] = time.perf_counter() - start
    return ProtocolResult(cut=cut, validation_cut=vcut, validation=validation, chosen=chosen, best=best,
                          targets=targets, ranks=ranks, table=table, seconds=seconds)
