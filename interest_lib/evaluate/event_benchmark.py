"""The event-level protocol end to end: choose baseline settings on a validation period, then
evaluate every baseline once on the test period and compare each with the best baseline.

Validation period: a second cut at the same quantile of the events at or before the main cut;
its targets are the events between the two cuts (users with history before the second cut), and
nothing after the main cut is read. The *best baseline* is the one with the highest NDCG@10 on
all validation targets; the test period is only evaluated after every choice is made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import numpy as np
import pandas as pd

from interest_lib.evaluate.event_protocol import (
    EventLog, Targets, evaluate_model, format_table, make_targets, protocol_table, time_cut,
)
from interest_lib.evaluate.metrics import metrics_from_ranks
from interest_lib.models.event_baselines import (
    FIXED, Candidate, NeighbourCache, personal_frequency_grid, tifu_grid,
)

SELECT_METRIC = "ndcg@10"
PRIORS = (0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0)  # repeat/explore weights tried on the chosen personal frequency


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


def _score(candidate: Candidate, log: EventLog, targets: Targets, **build) -> tuple[np.ndarray, dict, float]:
    start = time.perf_counter()
    ranks = evaluate_model(candidate.build(**build), log, targets)
    return ranks, metrics_from_ranks(ranks, (10,)), time.perf_counter() - start


def choose_baselines(log: EventLog, targets: Targets, log_line: Callable[[str], None] = print):
    """Validation: the fixed baselines, the personal-frequency grid (decay unit and rate, binary
    baskets) at prior 1e-6, then its prior (repeat/explore weight), then TIFU-KNN's k and alpha on
    top of the chosen personal frequency. Returns (rows tried, chosen setting per baseline,
    best baseline name)."""
    rows, chosen, best_value = [], {}, {}

    def trial(name: str, candidate: Candidate, **build) -> float:
        _, m, secs = _score(candidate, log, targets, **build)
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
    cache = NeighbourCache()  # the alphas of one k share its neighbours
    for candidate in tifu_grid(own):
        trial("tifu_knn", candidate, cache=cache)
    best = max(best_value, key=best_value.get)
    return pd.DataFrame(rows), chosen, best


def run_event_protocol(log: EventLog, quantile: float = 0.8, n_boot: int = 1000, seed: int = 0,
                       log_line: Callable[[str], None] = print,
                       models: dict[str, Callable[..., object]] | None = None,
                       period: str = "test") -> ProtocolResult:
    """Cut, validation-period choice of settings and best baseline, then the test-period table
    (every chosen baseline, slices all / switch / new, difference to the best with its CI).
    ``models``: name -> factory of a protocol model with fixed settings (chosen before, on the
    validation period), fitted at the cut and scored on the test period beside the baselines; the
    factory is called with ``reference``, a factory of the best baseline as chosen on validation
    (the learned ranker chooses its switch weight against it, before the cut).
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
        ranks[name] = evaluate_model(factory(reference=chosen[best].build), log, targets)
        seconds[f"{period} {name}"] = time.perf_counter() - t0
        log_line(f"{period} {name}: ndcg@10 {metrics_from_ranks(ranks[name], (10,))['ndcg@10']:.5f} "
                 f"({seconds[f'{period} {name}']:.0f}s)")
    seconds[period] = time.perf_counter() - start
    start = time.perf_counter()
    table = protocol_table(ranks, targets, reference=best, n_boot=n_boot, seed=seed)
    seconds["bootstrap"] = time.perf_counter() - start
    return ProtocolResult(cut=cut, validation_cut=vcut, validation=validation, chosen=chosen, best=best,
                          targets=targets, ranks=ranks, table=table, seconds=seconds)


#: Protocol models beside the baselines, by name (fixed settings, chosen on a validation period).
PROTOCOL_MODELS = ("learned_ranker",)


def ranker_params(text: str = ""):
    """:class:`~interest_lib.models.event_ranker.RankerParams` from ``key=value,...`` (its fields'
    types; booleans as 0/1). Raises ValueError naming an unknown key and the known ones, or a
    setting whose value is not of its type."""
    from interest_lib.models.event_ranker import RankerParams

    types = {f.name: f.type for f in fields(RankerParams)}
    params = RankerParams()
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise ValueError(f"unknown ranker setting {key!r}; known: {', '.join(types)}")
        kind = str(types[key])
        parse = {"int": int, "float": float, "bool": lambda v: bool(int(v))}[kind]
        try:
            parsed = parse(value)
        except ValueError:
            raise ValueError(f"ranker setting {key!r} is {value!r}: expected "
                             + ("0 or 1" if kind == "bool" else f"a number ({kind})")) from None
        params = replace(params, **{key: parsed})
    return params


def model_factories(models: str, ranker: str = "",
                    log_line: Callable[[str], None] = print) -> dict[str, Callable[..., object]]:
    """name -> factory of a fresh protocol model for each of the comma-separated ``models`` (""
    = none), for :func:`run_event_protocol`'s ``models`` (``ranker``: the learned ranker's
    settings, see :func:`ranker_params`). Raises ValueError naming an unknown model or setting."""
    names = list(filter(None, models.split(",")))
    unknown = [n for n in names if n not in PROTOCOL_MODELS]
    if unknown:
        raise ValueError(f"unknown protocol model(s) {', '.join(unknown)}; known: {', '.join(PROTOCOL_MODELS)}")
    params = ranker_params(ranker)

    def learned_ranker(reference=None):
        from interest_lib.models.event_ranker import LearnedRanker

        return LearnedRanker(params, log_line=log_line, reference=reference)

    return {name: learned_ranker for name in names}


def warehouse_events(warehouse: str, version: int | None = None) -> pd.DataFrame:
    """silver.events_sessionized of ``warehouse`` (at ``version``; None: the latest) as the
    protocol's events frame (``user_id``, ``category``, ``ts`` naive UTC), read from its Delta log
    without Spark. Raises :class:`~interest_lib.errors.InputError` when the table is missing or
    empty."""
    from interest_lib import schema as S
    from interest_lib.errors import InputError
    from interest_lib.storage.arrow_snapshot import read_snapshot
    from interest_lib.storage.catalog import SILVER_EVENTS_SESSIONIZED, table_path

    path = table_path(warehouse, SILVER_EVENTS_SESSIONIZED)
    try:
        table = read_snapshot(path, version, columns=[S.USER_ID, S.CATEGORY_ID, S.EVENT_TIME])
    except Exception as exc:  # no Delta log there (or unreadable): say which table and what to run
        raise InputError(f"{SILVER_EVENTS_SESSIONIZED} cannot be read at {path} ({type(exc).__name__}: {exc}); "
                         "run `interest ingest` and `interest sessionize` first") from exc
    if table.num_rows == 0:
        raise InputError(f"{SILVER_EVENTS_SESSIONIZED} at {path} has no rows: nothing to evaluate")
    frame = table.to_pandas()
    return pd.DataFrame({"user_id": frame[S.USER_ID], "category": frame[S.CATEGORY_ID],
                         "ts": pd.to_datetime(frame[S.EVENT_TIME], utc=True).dt.tz_convert(None)})


def render_result(res: ProtocolResult, period: str = "test") -> str:
    """The period's header (cut, targets, slices), the chosen baseline settings and the table."""
    t = res.targets
    return "\n".join([
        f"{period}: cut {pd.Timestamp(t.cut).isoformat()}Z, {len(t):,} targets in {len(t.basket_ts):,} baskets, "
        f"{int(t.is_switch.sum()):,} switch, {int(t.is_new.sum()):,} new",
        "settings (chosen on validation): " + "; ".join(c.label() for c in res.chosen.values()),
        format_table(res.table, res.best),
    ])
