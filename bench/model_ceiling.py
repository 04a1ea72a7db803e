"""How good can the models get on this data? Baselines vs oracles that know the generator's truth.

    python bench/model_ceiling.py [WAREHOUSE [RUN_STORE]] [--set generate.users=N ...] [--event-models learned_ranker,...]
        (defaults ./warehouse and ./runs, after `make run` on the default generated set; a store
        generated with other settings needs them again, to redraw its users)

Reads gold.training_sequences and ref.vocab, fits the baselines on the train split exactly as
``interest evaluate`` does, and scores on the test split, beside them, forecasters that know
what no model can see: each user's true interest mixture, recomputed from the generator
(:func:`~interest_lib.generate.trajectories.draw_profile` with the conf's seed; users are matched
through the pseudonymisation key), averaged over a window and mixed with the catalogue
exploration every user does (``NOISE_SHARE`` of the draws, by leaf popularity):

- ``oracle (mixture at cut-off)``: the mixture over the cut-off window itself. It uses nothing
  from the future, only a perfectly denoised present: the ceiling of a model that estimated a
  user's current interests without error.
- ``oracle (mixture a week later)``: the mixture over the week after the cut-off (knows the
  future, e.g. that a switch happens).
- ``oracle (cut-off mixture seen through the user's event count)``: what a perfect estimator of
  the present would get from as many events as the row has before its cut-off, all drawn from
  the cut-off mixture (:func:`seen_through_draws`): sampling noise left in, the user's past
  mixtures taken out. Still optimistic for any model (a migrating user's real history is drawn
  from older mixtures); the part of the cut-off oracle's headroom it keeps says how much of
  that headroom is sampling noise that no model can remove.
- ``oracle (cut-off mixture seen through the user's sessions)``: the same with the history's
  real grain (:func:`seen_through_sessions`): the generator draws a category per interaction,
  not per event, and half of a session's interactions repeat its focus, so a history holds
  fewer independent draws than events. Every session and interaction of the user before the
  cut-off (silver.events_sessionized) is redrawn from the cut-off mixture and only the
  independent draws are counted, the mean of 5 redraws. Still optimistic (no drift, and the
  independent draws are known).
- ``oracle (the same, the cut-off window's sessions as they were)``: the sessions that started in
  the cut-off window keep the categories they really had (each once per session), only the older
  ones are redrawn (:func:`history_sessions` with ``window_as_it_was``). The oracle above sees
  the present through draws independent of the cut-off window the forecast blends in and the
  labels carry over, which no model can: its estimate and that window are two looks at the
  present where a model has one. The tightest of the bounds: no drift before the cut-off window,
  and the independent draws known.

For the next category an oracle ranks categories by the mixture; for the next window it
forecasts ``a * cut-off window + (1 - a) * mixture`` (a label window's profile carries half of
the previous one), keeping the top ``top_k`` like the labels, with ``a`` tuned on the validation
split. Prints NDCG@10 (all / switch slice) and the forecast JS divergence with each row's change
against the best baseline, then the trained models of the run store (the latest published run
of each task, as ``interest evaluate`` reads them) with the **share of the cut-off oracle's
headroom** each captures: (model - best baseline) / (oracle at cut-off - best baseline), on the
switch slice's NDCG@10 and on the forecast JS (issue 13 asks >= 50% on both), and of the
seen-through oracle's. ``--event-models learned_ranker,tifu_knn,...`` adds the event-level
models that ``interest score --set score.migration=event:<name>`` serves, scored on the same test
rows (:func:`event_model_rows`).

A last table reads the switch slice at one overall NDCG@10 (:func:`print_matched_overall`). A
switch target is never in the cut-off window, so dividing the scores of the window's categories
raises any forecaster's switch NDCG@10 and lowers its overall NDCG@10 (:func:`switch_frontier`):
a migration model trained to weight switches more moves along that line and can show half of the
cut-off oracle's switch headroom in the table above while losing a tenth of its overall NDCG@10
(the Transformer with switch samples weighted 8x, 2026-12-07: +54% there, −34% here). The table
compares each forecaster with the best baseline and the cut-off oracle at one overall NDCG@10,
the lower of its own and the best baseline's. Numpy / pyarrow / torch, no Spark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Sequence

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from interest_lib.conf import load_config  # noqa: E402
from interest_lib.evaluate.metrics import js_divergence, sliced_ranking_metrics, sparse_to_dense  # noqa: E402
from interest_lib.features.windows import ORIGIN  # noqa: E402
from interest_lib.generate.catalogue import get_catalogue  # noqa: E402
from interest_lib.generate.trajectories import NOISE_SHARE, draw_profile, mixture, raw_user_id  # noqa: E402
from interest_lib.ingest.pseudonymise import pseudonymise_py, resolve_key  # noqa: E402
from interest_lib.metrics import normalise_rows  # noqa: E402
from interest_lib.models import SEQUENCE_COLUMNS  # noqa: E402
from interest_lib.models.baselines import fit_baselines  # noqa: E402
from interest_lib.storage import catalog  # noqa: E402
from interest_lib.storage.arrow_snapshot import read_snapshot  # noqa: E402

_SAMPLES_PER_WINDOW = 24  # time points averaged per window (hourly mixtures barely change)


def load_splits(warehouse: str) -> tuple[dict, int, dict]:
    """({split: {column: array}} with user_id and window, number of categories, {key: idx})."""
    table = read_snapshot(catalog.table_path(warehouse, catalog.GOLD_TRAINING_SEQUENCES),
                          columns=["user_id", "window", "split", *SEQUENCE_COLUMNS])
    columns = table.to_pydict()
    split = np.array(columns.pop("split"))
    arrays = {c: np.array(v) for c, v in columns.items()}
    vocab = read_snapshot(catalog.table_path(warehouse, catalog.REF_VOCAB)).to_pydict()
    categories = {k: i for kind, k, i in zip(vocab["kind"], vocab["key"], vocab["idx"]) if kind == "category"}
    splits = {s: {c: v[split == s] for c, v in arrays.items()} for s in ("train", "validation", "test")}
    return splits, max(categories.values()), categories


def true_mixtures(rows: dict, conf, categories: dict, weeks_ahead: int) -> np.ndarray:
    """[N, C+1]: each row's true category mixture over the window ``weeks_ahead`` after its
    cut-off window (0 = the cut-off window), exploration included."""
    g = conf.generate
    cat = get_catalogue(g.seed, g.items_per_category)
    leaf_idx = np.array([categories.get(c, 0) for c in cat.category_ids])
    explore = np.zeros(max(categories.values()) + 1)
    np.add.at(explore, leaf_idx, cat.leaf_popularity)
    key = resolve_key(conf)
    users = {pseudonymise_py(raw_user_id(u), key): u for u in range(g.users)}
    start = dt.datetime.fromisoformat(g.start_date).replace(tzinfo=dt.timezone.utc)
    origin = ORIGIN if ORIGIN.tzinfo else ORIGIN.replace(tzinfo=dt.timezone.utc)
    step = conf.features.step_days * 86400.0
    offsets = (np.arange(_SAMPLES_PER_WINDOW) + 0.5) / _SAMPLES_PER_WINDOW * step
    profiles: dict = {}
    out = np.zeros((len(rows["user_id"]), len(explore)))
    for i, (user, window) in enumerate(zip(rows["user_id"], rows["window"])):
        u = users[user]
        if u not in profiles:
            profiles[u] = draw_profile(g.seed, u, cat, g.days, g.mean_events_per_user)
        begin = (origin - start).total_seconds() + (int(window) + weeks_ahead) * step
        t = np.clip(begin + offsets, 0.0, g.days * 86400.0 - 1.0)
        np.add.at(out[i], leaf_idx[profiles[u].leaves], mixture(profiles[u], t).mean(axis=0))
    out = (1.0 - NOISE_SHARE) * out + NOISE_SHARE * explore
    out[:, 0] = 0.0
    return out


def keep_top(dist: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` largest entries, renormalised (the labels keep a window's top K)."""
    out = dist.copy()
    np.put_along_axis(out, np.argsort(-out, axis=1)[:, k:], 0.0, axis=1)
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)


def seen_through_draws(mix: np.ndarray, n_events: np.ndarray, prior: np.ndarray, seed: int = 0) -> np.ndarray:
    """[N, C+1]: each row's true mixture as a perfect estimator would see it through as many events
    as the row has before its cut-off, all drawn from the cut-off mixture itself (the empirical
    shares of ``n_events`` draws, plus one pseudo-event spread by ``prior``). Optimistic for any
    model: real histories come from the user's *earlier* mixtures, so for a user who is migrating
    they say less about the present than these draws do."""
    rng = np.random.default_rng(seed)
    counts = np.stack([rng.multinomial(int(n), row) for n, row in zip(n_events, normalise_rows(mix))])
    return normalise_rows(counts + prior[None, :])


def row_cutoffs(rows: dict, conf) -> np.ndarray:
    """[N] datetime64[ns] (naive UTC): each row's cut-off, the end of its window."""
    f = conf.features
    return np.array([np.datetime64(ORIGIN + dt.timedelta(days=int(w) * f.step_days + f.window_days), "ns")
                     for w in rows["window"]])


def history_interactions(warehouse: str, categories: dict):
    """Every interaction (an item looked at: the unit the generator draws a category for) from
    silver.events_sessionized, by user and time: a DataFrame of ``user_id``, ``event_time`` (naive
    UTC), ``session_id`` and ``category`` (vocabulary index). A search belongs to the interaction
    it precedes, a review (days after the purchase, same item) is none."""
    from interest_lib.generate.events import INTERACTION_TYPES

    table = read_snapshot(catalog.table_path(warehouse, catalog.SILVER_EVENTS_SESSIONIZED),
                          columns=["user_id", "item_id", "category_id", "event_type", "event_time",
                                   "session_id"]).to_pandas()
    table = table[table["event_type"].isin(INTERACTION_TYPES)]
    table = table.sort_values(["user_id", "event_time"], kind="stable")
    # a new interaction: a new session, or another item than the event before in the session
    same_session = table["session_id"].eq(table["session_id"].shift()) & table["user_id"].eq(table["user_id"].shift())
    starts = table[~(same_session & table["item_id"].eq(table["item_id"].shift()))]
    return starts.assign(event_time=starts["event_time"].dt.tz_convert(None).astype("datetime64[us]"),
                         category=starts["category_id"].map(categories).fillna(0).astype(np.int64))[
        ["user_id", "event_time", "session_id", "category"]]


def history_sessions(interactions, rows: dict, conf, num_categories: int,
                     window_as_it_was: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """(per row, the number of interactions of each of the user's sessions before the end of the
    row's cut-off window, oldest first; an [N, C+1] array of zeros). With ``window_as_it_was``
    the sessions that started inside the cut-off window leave the lists, and the array counts
    the categories their interactions really had instead, each once per session.
    ``interactions``: :func:`history_interactions`."""
    by_user = {u: (g["event_time"].to_numpy(), g["session_id"].to_numpy(), g["category"].to_numpy())
               for u, g in interactions.groupby("user_id", sort=False)}
    window = np.timedelta64(conf.features.window_days * 86400, "s")
    sessions, actual = [], np.zeros((len(rows["user_id"]), num_categories + 1))
    for i, (user, end) in enumerate(zip(rows["user_id"], row_cutoffs(rows, conf))):
        times, ids, cats = by_user.get(user, (np.empty(0, "datetime64[us]"), np.empty(0, object), np.empty(0, np.int64)))
        before = times < end
        times, ids, cats = times[before], ids[before], cats[before]
        names, first, inverse, counts = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
        recent = times[first] >= end - window if window_as_it_was else np.zeros(len(names), dtype=bool)
        order = np.argsort(first)
        sessions.append(counts[order][~recent[order]])
        in_window = recent[inverse]
        pairs = np.unique(np.stack([inverse[in_window], cats[in_window]]), axis=1)
        np.add.at(actual[i], pairs[1], 1.0)
    actual[:, 0] = 0.0
    return sessions, actual


def seen_through_sessions(mix: np.ndarray, sessions: list[np.ndarray], prior: np.ndarray,
                          seeds: int = 5, actual: np.ndarray | None = None) -> list[np.ndarray]:
    """Per seed, [N, C+1]: each row's true cut-off mixture as a perfect estimator would see it
    through the user's real sessions (``sessions``: interactions per session), all drawn from
    that mixture the way the generator draws them (a focus per session that each interaction
    keeps with probability ``SESSION_FOCUS``, else a fresh draw), counting only the independent
    draws (the focus once where some interaction kept it, every fresh draw once), plus one
    pseudo-draw spread by ``prior``, plus ``actual`` ([N, C+1]: draws counted as they really were,
    see :func:`history_sessions`). Events of one interaction, and interactions that keep the
    session's focus, repeat one draw: counting them as draws, as :func:`seen_through_draws`
    does, overstates how much a history says. Optimistic for any model on two counts: no drift
    (the whole history comes from the present mixture) and the independent draws are known."""
    from interest_lib.generate.events import SESSION_FOCUS

    probs = normalise_rows(mix)
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        counts = np.zeros_like(probs)
        for i, per_session in enumerate(sessions):
            n_sessions = len(per_session)
            if not n_sessions:
                continue
            focus = rng.choice(len(probs[i]), size=n_sessions, p=probs[i])
            keeps = rng.random(int(per_session.sum())) < SESSION_FOCUS
            kept = np.add.reduceat(keeps, np.cumsum(per_session) - per_session) > 0
            np.add.at(counts[i], focus[kept], 1.0)
            fresh = int((~keeps).sum())
            if fresh:
                np.add.at(counts[i], rng.choice(len(probs[i]), size=fresh, p=probs[i]), 1.0)
        out.append(normalise_rows(counts + (0.0 if actual is None else actual) + prior[None, :]))
    return out


def cutoff_window_categories(warehouse: str, rows: dict, categories: dict) -> np.ndarray:
    """[N, C+1] bool: the categories of each row's cut-off window (silver.user_interest_windows'
    ``window_categories``, the set a row's ``is_switch`` is defined against)."""
    table = read_snapshot(catalog.table_path(warehouse, catalog.SILVER_USER_INTEREST_WINDOWS),
                          columns=["user_id", "window", "window_categories"]).to_pydict()
    sets = {(u, int(w)): c for u, w, c in zip(table["user_id"], table["window"], table["window_categories"])}
    out = np.zeros((len(rows["user_id"]), max(categories.values()) + 1), dtype=bool)
    for i, key in enumerate(zip(rows["user_id"], rows["window"].astype(int))):
        out[i, [categories.get(c, 0) for c in sets.get(key, [])]] = True
    out[:, 0] = False
    return out


#: Divisors of the cut-off window's categories' scores along a forecaster's frontier.
FRONTIER_DIVISORS = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)


def switch_frontier(scores: np.ndarray, in_window: np.ndarray, rows: dict,
                    divisors: Sequence[float] = FRONTIER_DIVISORS) -> np.ndarray:
    """[len(divisors), 2]: NDCG@10 (all, switch slice) of ``scores`` with the cut-off window's
    categories' scores divided by each divisor. Any ranking can trade its overall NDCG for the
    switch slice this way (a switch target is never in the cut-off window): the frontier says
    what a forecaster's switch NDCG is worth at a given overall NDCG. Scores with finite negative
    values are read as log-scores; otherwise -inf (a category a model cannot score) is 0."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if (scores[finite] < 0).any():
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    else:
        scores = np.where(finite, scores, 0.0)
    points = []
    for divisor in divisors:
        ranking = sliced_ranking_metrics(np.where(in_window, scores / divisor, scores),
                                         rows["next_category"], rows["is_switch"])
        points.append((ranking["all"]["ndcg@10"], ranking["switch"]["ndcg@10"]))
    return np.array(points)


def switch_at(frontier: np.ndarray, overall: float) -> float:
    """The switch NDCG@10 a frontier (:func:`switch_frontier`) reaches at overall NDCG@10
    ``overall``: the best of its points at or above that overall NDCG, and along each segment
    that crosses it (linear); NaN when even the undivided scores are below it."""
    candidates = list(frontier[frontier[:, 0] >= overall, 1])
    for (a0, s0), (a1, s1) in zip(frontier[:-1], frontier[1:]):
        if (a0 - overall) * (a1 - overall) <= 0 and a0 != a1:
            candidates.append(s0 + (s1 - s0) * (overall - a0) / (a1 - a0))
    return float(max(candidates)) if candidates else float("nan")


def blended_forecast(last: np.ndarray, mix: np.ndarray, a: float, k: int) -> np.ndarray:
    """``a`` * the cut-off window's distribution (``last``) + (1 - ``a``) * ``mix``, top ``k`` kept."""
    return keep_top(a * last + (1.0 - a) * mix, k)


def model_rows(store_root: str, test: dict, num_categories: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, next-category scores or None, forecast or None) of the latest run of each task."""
    from interest_lib.models.inference import load_trained, predict_arrays
    from interest_lib.runs.store import latest_run

    out = []
    for task in ("migration", "evolution"):
        store = latest_run(store_root, task)
        if store is None:
            print(f"(no published {task} run in {store_root})")
            continue
        model, record = load_trained(store.model)
        pred = predict_arrays(model, test)
        key = "next_probs" if task == "migration" else "forecast"
        values = pred[key][:, :num_categories + 1]
        out.append((record["model_name"], values if task == "migration" else None,
                    values if task == "evolution" else None))
    return out


def event_model_rows(warehouse: str, test: dict, categories: dict, conf,
                     names: Sequence[str]) -> list[tuple[str, np.ndarray, None]]:
    """(``event:<name>``, next-category scores, None) of event-level models (``learned_ranker``,
    ``tifu_knn``, ...), as ``interest score --set score.migration=event:<name>`` serves them,
    on the window protocol's test rows. Like the window models, whose weights and baselines are
    fitted on the windows before the test period, settings (and the ranker's bar) are chosen on
    the latest fifth of the events before the test period's first label window and the ranker
    is trained there; every model's *state* (its counts, the ranker's features) then starts from
    the events before the earliest test row's cut-off (a row's label window can come weeks after
    its cut-off) and grows through the later events, each row scored at its own cut-off (the end
    of its window: the events strictly before it)."""
    from interest_lib.evaluate.event_benchmark import warehouse_events
    from interest_lib.evaluate.event_protocol import encode_events
    from interest_lib.features.sequences import split_bounds
    from interest_lib.models.event_ranker import FeatureState
    from interest_lib.scoring.event_models import event_settings, new_event_model, vocabulary_ids

    f = conf.features
    ns = lambda t: int(np.datetime64(t, "ns").astype(np.int64))  # noqa: E731
    cutoff = row_cutoffs(test, conf).astype(np.int64)
    log = encode_events(warehouse_events(warehouse))
    users = {u: i for i, u in enumerate(log.users)}
    row_user = np.array([users[u] for u in test["user_id"]])
    to_vocab = vocabulary_ids(log.categories, categories)
    known = to_vocab > 0
    last = dt.datetime.fromtimestamp(int(log.ts.max()) / 1e9, dt.timezone.utc).replace(tzinfo=None)
    _, test_start = split_bounds(last, f.step_days, conf.sequences.validation_days, conf.sequences.test_days)
    n_fit = int(np.searchsorted(log.ts, ns(test_start), side="left"))
    n0 = int(np.searchsorted(log.ts, cutoff.min(), side="left"))
    quiet = lambda line: None  # noqa: E731
    settings = event_settings(log, n_fit, quiet)
    chosen, best = settings
    print(f"event-level models: settings and the ranker's training on the {n_fit:,} events before "
          f"{test_start:%Y-%m-%d} (best baseline there {chosen[best].label()}); states from the {n0:,} "
          f"events before the earliest test cut-off")
    out = []
    for name in names:
        model = new_event_model(name, settings, quiet)
        if name == "learned_ranker":  # weights trained before the test period, its state from n0
            model.fit(log, n_fit)
            model.state = FeatureState(tifu_k=model.params.tifu_k, hour_habit=model.params.hour_habit)
            model.state.fit(log, n0)
        else:
            model.fit(log, n0)
        got = scores_at_cutoffs(model, log, n0, row_user, cutoff)
        scores = np.full((len(row_user), max(categories.values()) + 1), -np.inf)
        scores[:, to_vocab[known]] = got[:, 1:][:, known]
        out.append((f"event:{name}", scores, None))
    return out


def scores_at_cutoffs(model, log, start: int, row_user: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """[rows, C+1]: ``model`` (fitted at event ``start``) observes the later events one timestamp
    at a time and scores each row's user at the row's ``cutoff`` (ns) once every event strictly
    before it, and none at or after it, has been observed."""
    out = np.zeros((len(row_user), log.num_categories + 1))
    seen = start
    for c in np.unique(cutoff):
        upto = int(np.searchsorted(log.ts, c, side="left"))
        while seen < upto:
            end = int(np.searchsorted(log.ts, log.ts[seen], side="right"))
            model.observe(log.user[seen:end], log.category[seen:end], int(log.ts[seen]))
            seen = end
        rows = np.flatnonzero(cutoff == c)
        out[rows] = model.scores(row_user[rows], int(c))
    return out


def headroom_share(value: float, best: float, oracle: float) -> float:
    """The part of the oracle's gain over the best baseline that ``value`` captures (any
    direction: for JS pass the values negated so that higher is better)."""
    return (value - best) / (oracle - best) if oracle != best else float("nan")


def main(warehouse: str = "warehouse", store_root: str = "runs", overrides: Sequence[str] = (),
         event_models: Sequence[str] = ()) -> None:
    """Print the baselines-vs-oracles-vs-models table for the warehouse's test split (``overrides``:
    the ``--set`` settings the store was generated with, e.g. ``generate.users=8000``;
    ``event_models``: event-level models scored beside the runs, see :func:`event_model_rows`)."""
    conf = load_config(overrides=list(overrides))
    splits, num_categories, categories = load_splits(warehouse)
    k = splits["train"]["next_dist_category"].shape[1]
    baselines = fit_baselines(splits["train"], num_categories, splits["validation"])
    targets = {s: sparse_to_dense(splits[s]["next_dist_category"], splits[s]["next_dist_share"], num_categories)
               for s in ("validation", "test")}
    last = {s: baselines["persistence"].forecast(splits[s]) for s in ("validation", "test")}
    test = splits["test"]
    rows = []
    ranked = {}  # name -> next-category scores on the test split, for the frontier table

    def row(name: str, scores, forecast) -> None:
        nan = float("nan")
        if scores is not None:
            ranked[name] = scores
        ranking = (sliced_ranking_metrics(scores, test["next_category"], test["is_switch"]) if scores is not None
                   else {"all": {"ndcg@10": nan}, "switch": {"ndcg@10": nan}})
        js = float(js_divergence(forecast, targets["test"]).mean()) if forecast is not None else nan
        rows.append((name, ranking["all"]["ndcg@10"], ranking["switch"]["ndcg@10"], js))

    for name, baseline in baselines.items():
        row(name, baseline.next_scores(test), baseline.forecast(test))
    def oracle_row(label: str, mixes: dict) -> None:
        a = min(np.linspace(0.0, 1.0, 21), key=lambda w: js_divergence(
            blended_forecast(last["validation"], mixes["validation"], w, k), targets["validation"]).mean())
        row(f"{label}, a={a:.2f}", mixes["test"], blended_forecast(last["test"], mixes["test"], a, k))

    at_cutoff = {s: true_mixtures(splits[s], conf, categories, 0) for s in ("validation", "test")}
    oracle_row("oracle (mixture at cut-off)", at_cutoff)
    oracle_row("oracle (mixture a week later)", {s: true_mixtures(splits[s], conf, categories, 1)
                                                 for s in ("validation", "test")})
    popularity = baselines["popularity"].popularity
    oracle_row("oracle (cut-off mixture seen through the user's event count)",
               {s: seen_through_draws(at_cutoff[s], (splits[s]["ev_category"] > 0).sum(axis=1), popularity)
                for s in ("validation", "test")})
    seen_oracle = rows[-1]
    interactions = history_interactions(warehouse, categories)

    def sessions_row(label: str, window_as_it_was: bool) -> tuple[tuple, list]:
        seen = {s: history_sessions(interactions, splits[s], conf, num_categories, window_as_it_was)
                for s in ("validation", "test")}
        draws = {s: seen_through_sessions(at_cutoff[s], seen[s][0], popularity, actual=seen[s][1])
                 for s in ("validation", "test")}
        first = len(rows)
        for seed in range(len(draws["test"])):
            oracle_row("seed", {s: draws[s][seed] for s in ("validation", "test")})
        per_seed = np.array([r[1:] for r in rows[first:]])
        for seed_row in rows[first:]:
            ranked.pop(seed_row[0], None)
        del rows[first:]
        rows.append((f"{label}, mean of {len(per_seed)} draws)", *per_seed.mean(axis=0)))
        return rows[-1], draws["test"]

    sessions_oracle, session_draws = sessions_row("oracle (cut-off mixture seen through the user's sessions", False)
    window_oracle, window_draws = sessions_row(
        "oracle (the same, the cut-off window's sessions as they were", True)
    cutoff_oracle, first_model = rows[len(baselines)], len(rows)
    for name, scores, forecast in model_rows(store_root, test, num_categories):
        row(name, scores, forecast)
    if event_models:
        for name, scores, forecast in event_model_rows(warehouse, test, categories, conf, event_models):
            row(name, scores, forecast)

    measured = rows[:len(baselines)]
    best = [max(r[1] for r in measured), max(r[2] for r in measured), min(r[3] for r in measured)]
    print(f"test split: {len(splits['test']['user_id']):,} samples of {warehouse}")
    print("| forecaster | NDCG@10 all | vs best | NDCG@10 switch | vs best | forecast JS | vs best |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ndcg, switch, js in rows:
        cells = [name]
        for value, ref, lower_is_better in ((ndcg, best[0], False), (switch, best[1], False), (js, best[2], True)):
            if value != value:
                cells += ["–", "–"]
                continue
            change = ((ref - value) if lower_is_better else (value - ref)) / ref
            cells += [f"{value:.3f}", f"{100 * change:+.1f}%"]
        print("| " + " | ".join(cells) + " |")
    print("(vs best: gain over the best baseline as `interest evaluate` counts it, (best - value) / best "
          "for JS)")
    print("\nshare of an oracle's headroom over the best baseline (issue 13: >= 50% of the cut-off oracle's on both):")
    print("| forecaster | of the cut-off oracle's: NDCG@10 switch | forecast JS "
          "| of the seen-through oracle's: NDCG@10 switch | forecast JS |")
    print("|---|---:|---:|---:|---:|")
    for name, _ndcg, switch, js in [seen_oracle, sessions_oracle, window_oracle] + rows[first_model:]:
        cells = []
        for oracle in (cutoff_oracle, seen_oracle):
            cells += [f"{100 * headroom_share(switch, best[1], oracle[2]):+.0f}%" if switch == switch else "–",
                      f"{100 * headroom_share(-js, -best[2], -oracle[3]):+.0f}%" if js == js else "–"]
        print(f"| {name} | " + " | ".join(cells) + " |")

    in_window = cutoff_window_categories(warehouse, test, categories)
    frontiers = {name: switch_frontier(scores, in_window, test) for name, scores in ranked.items()}
    frontiers[sessions_oracle[0]] = [switch_frontier(mix, in_window, test) for mix in session_draws]
    frontiers[window_oracle[0]] = [switch_frontier(mix, in_window, test) for mix in window_draws]
    print_matched_overall(frontiers, [r[0] for r in measured], cutoff_oracle[0],
                          [seen_oracle[0], sessions_oracle[0], window_oracle[0]]
                          + [r[0] for r in rows[first_model:] if r[2] == r[2]])


def matched_switch(frontiers: dict, name: str, baselines: Sequence[str], cutoff_name: str) -> tuple:
    """(level, switch NDCG@10 of ``name``, of the best baseline, of the cut-off oracle, share of the
    oracle's headroom), all at one overall NDCG@10: the lower of ``name``'s own and the best
    baseline's (the one ranking best overall), the other's cut-off window down-weighted to meet it
    (:func:`switch_at`; a baseline below that level counts as it is). A forecaster given as a list
    of frontiers (the redraws of an oracle) counts the mean of theirs."""
    listed = {n: f if isinstance(f, list) else [f] for n, f in frontiers.items()}

    def at(n: str, level: float) -> float:
        return float(np.mean([switch_at(f, level) for f in listed[n]]))

    def own(n: str, column: int = 0) -> float:  # undivided overall (0) or switch (1) NDCG@10
        return float(np.mean([f[0, column] for f in listed[n]]))

    level = min(own(name), max(own(b) for b in baselines))
    # a baseline that ranks below that level overall keeps its undivided switch NDCG (the most it
    # shows with less overall NDCG than asked): it favours the baselines, never the forecaster
    best = max(at(b, level) if own(b) >= level else own(b, 1) for b in baselines)
    value, oracle = at(name, level), at(cutoff_name, level)
    return level, value, best, oracle, headroom_share(value, best, oracle)


def print_matched_overall(frontiers: dict, baselines: Sequence[str], cutoff_name: str, forecasters: Sequence[str]) -> None:
    """Each forecaster's switch slice against the best baseline's and the cut-off oracle's at one
    overall NDCG@10 (:func:`matched_switch`): the share the headroom table prints can be bought with
    overall NDCG (down-weighting the cut-off window's categories raises every forecaster's switch
    NDCG), this one cannot."""
    print("\nthe switch slice at matched overall NDCG@10: the lower of the forecaster's own and the best "
          "baseline's, the other's scores of the cut-off window's categories divided until it falls to that "
          "level (a switch target is never in the cut-off window, so any ranking buys switch NDCG with overall "
          "NDCG; at one overall level it cannot):")
    print("| forecaster | matched overall NDCG@10 | its NDCG@10 switch | best baseline's | cut-off oracle's "
          "| share of the cut-off oracle's switch headroom |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in forecasters:
        level, value, best, oracle, share = matched_switch(frontiers, name, baselines, cutoff_name)
        print(f"| {name} | {level:.3f} | {value:.3f} | {best:.3f} | {oracle:.3f} | {100 * share:+.0f}% |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", nargs="?", default="warehouse")
    parser.add_argument("store_root", nargs="?", default="runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting the store was generated with (as for `interest`), e.g. generate.users=8000")
    parser.add_argument("--event-models", default="",
                        help="event-level models scored beside the runs, comma-separated (learned_ranker, tifu_knn, "
                             "personal_frequency, ...), as `interest score --set score.migration=event:<name>` serves them")
    args = parser.parse_args()
    main(args.warehouse, args.store_root, args.overrides, [m for m in args.event_models.split(",") if m])
    sys.stdout.flush()
    os._exit(0)  # deltalake 1.6.6 can abort the interpreter at exit
