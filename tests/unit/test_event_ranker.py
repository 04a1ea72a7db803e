"""The learned ranker of the event-level protocol on planted logs with known answers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from interest_lib.evaluate.event_protocol import encode_events, evaluate_model, make_targets, time_cut
from interest_lib.evaluate.metrics import metrics_from_ranks
from interest_lib.models.event_baselines import PersonalFrequency
from interest_lib.models.event_ranker import FEATURES, FeatureState, LearnedRanker, RankerParams, column_mean_std

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2024-01-01")


def replenishment_log(n_users=40, n_days=30, seed=0):
    """Every user shops daily: a staple category every day, and three categories bought in turn,
    one every day (``p0`` on days 0, 3, 6, ..., ``p1`` on 1, 4, ..., ``p2`` on 2, 5, ...), each user
    with their own three. Decayed frequency cannot tell which of the three is due; the time since
    each was last bought can."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        staple = f"s{u % 4}"
        cycle = rng.choice(12, size=3, replace=False)
        start = int(rng.integers(0, 3))
        for d in range(n_days):
            ts = T0 + pd.Timedelta(days=d, hours=int(rng.integers(8, 20)))
            rows.append((u, staple, ts))
            rows.append((u, f"p{cycle[(d + start) % 3]}", ts))
    return pd.DataFrame(rows, columns=["user_id", "category", "ts"])


def ndcg(model, log, targets) -> float:
    return metrics_from_ranks(evaluate_model(model, log, targets), (10,))["ndcg@10"]


def test_ranker_learns_replenishment_cycles_that_frequency_cannot_see():
    log = encode_events(replenishment_log())
    targets = make_targets(log, time_cut(log.ts))
    frequency = ndcg(PersonalFrequency(decay=0.9, unit="basket", binary=True), log, targets)
    ranker = LearnedRanker(RankerParams(epochs=10, batch=16, hidden=32, embedding=4, tifu_k=20, threads=1), log_line=lambda s: None)
    learned = ndcg(ranker, log, targets)
    # Two targets per basket: the staple and the due category. The best any model can do is the
    # staple 1st and the due category 2nd. Frequency ranks the due category 4th (the two others
    # were bought more recently); the ranker learns it is due.
    best = (1 + 1 / np.log2(3)) / 2
    assert frequency == pytest.approx((1 + 1 / np.log2(5)) / 2, abs=0.02)
    assert learned == pytest.approx(best, abs=0.01)
    assert ranker.history and ranker.history[-1]["loss"] < ranker.history[0]["loss"]


def test_features_of_a_basket_never_include_the_basket_itself():
    log = encode_events(replenishment_log(n_users=5, n_days=6))
    n = log.upto(int(log.ts[len(log) // 2]))
    state = FeatureState(tifu_k=2).fit(log, n)
    col = FEATURES.index("log_count")
    now = int(log.ts[n])
    before = state.features(np.arange(5), now)[:, :, col].copy()
    state.observe(log.user[n:n + 1], log.category[n:n + 1], now)
    after = state.features(np.arange(5), now)
    u, c = int(log.user[n]), int(log.category[n])
    assert after[u, c, col] == pytest.approx(np.log1p(np.expm1(before[u, c]) + 1))
    assert np.isfinite(after).all()


def test_ranker_refuses_a_history_too_short_to_learn_from():
    log = encode_events(replenishment_log(n_users=2, n_days=3))
    with pytest.raises(ValueError, match="baskets to learn from"):
        LearnedRanker(log_line=lambda s: None).fit(log, log.upto(int(log.ts[-1])))


def due_or_staple_log(n_users=40, n_days=40, p_due=0.6, seed=0):
    """Every user shops daily: a staple every day (always in the last basket: never a switch
    target) and, with probability ``p_due``, the one of their four cycle categories bought longest
    ago (always outside the switch window: a switch target). Given the history, the staple is sure
    and the due category has probability ``p_due``: a ranker trained on every target alike puts
    the staple first; one that weights switch targets ``w`` with ``w * p_due > 1`` puts the due one
    first."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        cycle = [f"c{c}" for c in rng.choice(16, size=4, replace=False)]
        nxt = 0
        for d in range(n_days):
            ts = T0 + pd.Timedelta(days=d, hours=int(rng.integers(8, 20)))
            rows.append((u, f"s{u % 4}", ts))
            if d < 4 or rng.random() < p_due:  # the first four days buy the cycle once in order
                rows.append((u, cycle[nxt % 4], ts))
                nxt += 1
    return pd.DataFrame(rows, columns=["user_id", "category", "ts"])


def test_switch_weight_moves_switch_targets_above_sure_repeats():
    log = encode_events(due_or_staple_log())
    targets = make_targets(log, time_cut(log.ts))
    staple = np.array([str(log.categories[c - 1]).startswith("s") for c in targets.category])
    assert targets.is_switch[~staple].all() and not targets.is_switch[staple].any()
    ranks = {}
    for weight in (1.0, 3.0):
        params = RankerParams(epochs=20, batch=16, hidden=32, embedding=4, tifu_k=20, threads=1, switch_weight=weight)
        ranks[weight] = evaluate_model(LearnedRanker(params, log_line=lambda s: None), log, targets)
    # unweighted: the sure staple 1st, the due category 2nd; weighted 3x (3 * 0.6 > 1): the due
    # category 1st most of the time, the staple mostly below it (the cycle is learned imperfectly)
    assert np.mean(ranks[1.0][staple] == 1) > 0.9 and np.mean(ranks[1.0][~staple] == 2) > 0.8
    assert np.mean(ranks[3.0][~staple] == 1) > 0.6 and np.mean(ranks[3.0][staple] == 1) < 0.5


def uneven_due_log(n_users=48, n_days=40, seed=0):
    """:func:`due_or_staple_log` with each user's own chance of buying the due category, spread
    evenly over 0.5-1.0: the heavier switch targets weigh, the more users' due category moves
    above their staple, one user at a time."""
    frames = [due_or_staple_log(n_users=1, n_days=n_days, p_due=0.5 + 0.5 * u / (n_users - 1), seed=seed + u)
              .assign(user_id=u) for u in range(n_users)]
    return pd.concat(frames, ignore_index=True)


SMALL = dict(epochs=12, batch=16, hidden=32, embedding=4, tifu_k=20, threads=1)


def test_switch_weight_is_raised_while_the_switch_slice_is_what_falls_short_of_the_reference():
    from interest_lib.models.event_ranker import SWITCH_WEIGHTS

    log = encode_events(uneven_due_log())
    lines = []

    def due_first():  # the bar: a ranker whose switch targets weigh 3x puts every due category first
        return LearnedRanker(RankerParams(**SMALL, switch_weight=3.0), log_line=lambda s: None)

    ranker = LearnedRanker(RankerParams(**SMALL, blend_identities=False), log_line=lines.append, reference=due_first)
    ranker.fit(log, log.upto(time_cut(log.ts)))
    # the search ran with the category identity, then without it
    assert [t["category_identity"] for t in ranker.switch_trials][0] is True
    assert {t["category_identity"] for t in ranker.switch_trials} == {True, False}
    for identity in (True, False):
        trials = [t for t in ranker.switch_trials if t["category_identity"] == identity]
        # weighted 1, the ranker puts each user's sure staple first: above the bar overall, below
        # it on switches (the due category second), so the switch fraction binds and heavier
        # weights raise it
        assert trials[0]["switch_weight"] == 1.0 and trials[0]["gain_switch"] < 0 < trials[0]["gain_all"]
        rules = [t["rule"] for t in trials]
        # weights were tried in order until one judged no better than the one before (or the grid ended)
        assert [t["switch_weight"] for t in trials] == list(SWITCH_WEIGHTS[:len(trials)])
        assert all(a < b for a, b in zip(rules[:-2], rules[1:-1]))
        assert len(trials) == len(SWITCH_WEIGHTS) or rules[-1] <= rules[-2]
    assert ranker.switch_weight > 1.0
    chosen = max(ranker.switch_trials, key=lambda t: t["rule"])
    assert (ranker.switch_weight, ranker.category_identity) == (chosen["switch_weight"], chosen["category_identity"])
    assert any(f"switch weight {ranker.switch_weight:g} {'with' if ranker.category_identity else 'without'} "
               "category identity chosen" in line for line in lines)
    assert ranker.blend_trial is None and len(ranker.members) == 1
    # the kept network is the chosen one: its rows per category are equal exactly without identity
    rows_equal = np.ptp(ranker.network()["b3"][1:], axis=0).max() == 0.0
    assert rows_equal == (not ranker.category_identity)
    assert ({(e["switch_weight"], e["category_identity"]) for e in ranker.history}
            == {(t["switch_weight"], t["category_identity"]) for t in ranker.switch_trials})


def test_the_blend_of_both_identities_best_networks_is_judged_and_kept_only_where_it_judges_best():
    log = encode_events(uneven_due_log())
    lines = []

    def due_first():
        return LearnedRanker(RankerParams(**SMALL, switch_weight=3.0), log_line=lambda s: None)

    ranker = LearnedRanker(RankerParams(**SMALL), log_line=lines.append, reference=due_first)
    ranker.fit(log, log.upto(time_cut(log.ts)))
    trial = ranker.blend_trial
    # its parts are each identity's best weight, the identity first
    assert trial["category_identities"] == [True, False]
    for identity, weight in zip(trial["category_identities"], trial["switch_weights"]):
        best = max((t for t in ranker.switch_trials if t["category_identity"] == identity), key=lambda t: t["rule"])
        assert weight == best["switch_weight"]
    blended = trial["rule"] > max(t["rule"] for t in ranker.switch_trials)
    assert len(ranker.members) == (2 if blended else 1) and len(ranker._nets) == len(ranker.members)
    assert (ranker.switch_weight is None) == blended
    assert any("the blend of both identities' best: holdout NDCG@10" in line for line in lines)
    assert any(line.endswith("blended chosen") == blended and line.endswith(" chosen") for line in lines)


def test_refit_trains_each_chosen_network_again_on_every_replayed_basket_for_its_best_epochs():
    """``refit``: after the choices, each member trains again on the holdout too, for the epochs
    that were its best, from the same seed; on the replenishment log it still finds the planted
    best ranking."""
    log = encode_events(uneven_due_log())
    lines = []

    def due_first():
        return LearnedRanker(RankerParams(**SMALL, switch_weight=3.0), log_line=lambda s: None)

    ranker = LearnedRanker(RankerParams(**SMALL, refit=True), log_line=lines.append, reference=due_first)
    ranker.fit(log, log.upto(time_cut(log.ts)))
    chosen = [e for e in ranker.history if "refit" not in e]
    refits = [e for e in ranker.history if e.get("refit")]
    # one refit per member, each as long as that member's best epoch on the holdout (epochs count from 0)
    expected = []
    for member in ranker.members:
        own = [e for e in chosen if (e["switch_weight"], e["category_identity"])
               == (member["switch_weight"], member["category_identity"])]
        runs = [own[i:i + SMALL["epochs"]] for i in range(0, len(own), SMALL["epochs"])]
        assert len(runs) == 1  # each (weight, identity) trained once during the search
        expected.append(max(runs[0], key=lambda e: e["holdout_ndcg@10"])["epoch"] + 1)
    assert len(refits) == sum(expected) and [e["epoch"] for e in refits] == [i for n in expected for i in range(n)]
    replayed = int(next(line for line in lines if "baskets replayed for training" in line).split()[1].replace(",", ""))
    assert sum(f"refit on all {replayed:,} replayed baskets" in line for line in lines) == len(ranker.members)
    assert len(ranker._nets) == len(ranker.members)

    log = encode_events(replenishment_log())
    targets = make_targets(log, time_cut(log.ts))
    params = RankerParams(epochs=10, batch=16, hidden=32, embedding=4, tifu_k=20, threads=1, refit=True)
    plain, refit = (LearnedRanker(replace(params, refit=r), log_line=lambda s: None) for r in (False, True))
    assert ndcg(refit, log, targets) == pytest.approx((1 + 1 / np.log2(3)) / 2, abs=0.01)
    ndcg(plain, log, targets)
    assert not np.allclose(plain.network()["w2"], refit.network()["w2"])  # a network trained again, not the kept one


def test_a_blend_scores_the_mean_of_its_networks_log_probabilities():
    log = encode_events(replenishment_log())
    n = log.upto(time_cut(log.ts))
    small = dict(epochs=3, batch=16, hidden=16, embedding=4, tifu_k=20, threads=1, switch_weight=1.0)
    parts = [LearnedRanker(RankerParams(**small, category_identity=identity), log_line=lambda s: None).fit(log, n)
             for identity in (True, False)]
    network = {f"{i}/{k}": v for i, part in enumerate(parts) for k, v in part.network().items()}
    blend = LearnedRanker(RankerParams(**small), log_line=lambda s: None).restore(network, log.categories, log, n)
    # each network restored alone on the same state (a fit's neighbours are found at its internal cut)
    parts = [LearnedRanker(RankerParams(**small), log_line=lambda s: None).restore(
        part.network(), log.categories, log, n) for part in parts]
    assert len(blend._nets) == 2 and set(blend.network()) == set(network)
    # restored without its fit's record: a blend, whose members' settings are unknown
    assert blend.members == [{"category_identity": None, "switch_weight": None}] * 2 and blend.switch_weight is None
    with pytest.raises(ValueError, match="1 members for 2 networks"):
        LearnedRanker(RankerParams(**small), log_line=lambda s: None).restore(
            network, log.categories, log, n, members=[{"category_identity": True, "switch_weight": 1.0}])
    users, now = np.arange(log.num_users), int(log.ts[n]) + 1

    def log_probabilities(s):
        s = s - s[:, 1:].max(axis=1, keepdims=True)
        return s - np.log(np.exp(s[:, 1:]).sum(axis=1, keepdims=True))

    expected = (log_probabilities(parts[0].scores(users, now)) + log_probabilities(parts[1].scores(users, now))) / 2
    got = blend.scores(users, now)
    assert np.isneginf(got[:, 0]).all()
    np.testing.assert_allclose(got[:, 1:], expected[:, 1:], rtol=1e-9, atol=1e-9)
    # the two networks differ: the blend is neither of them
    assert not np.allclose(got[:, 1:], log_probabilities(parts[0].scores(users, now))[:, 1:])


def test_without_a_reference_or_with_a_set_switch_weight_nothing_is_chosen():
    log = encode_events(uneven_due_log(n_users=12, n_days=20))
    n = log.upto(time_cut(log.ts))
    plain = LearnedRanker(RankerParams(**{**SMALL, "epochs": 2}), log_line=lambda s: None).fit(log, n)
    def trainings(ranker):  # epochs judged on the holdout, epochs of the refit
        return [sum(1 for e in ranker.history if bool(e.get("refit")) == refit) for refit in (False, True)]

    assert plain.switch_weight == 1.0 and not plain.switch_trials and trainings(plain) == [2, plain._member_epochs[0]]
    fixed = LearnedRanker(RankerParams(**{**SMALL, "epochs": 2, "switch_weight": 1.3}), log_line=lambda s: None,
                          reference=PersonalFrequency).fit(log, n)
    assert fixed.switch_weight == 1.3 and not fixed.switch_trials and trainings(fixed) == [2, fixed._member_epochs[0]]


def test_the_protocol_gives_the_ranker_its_best_baseline_to_choose_the_switch_weight_against():
    from interest_lib.evaluate.event_benchmark import model_factories, run_event_protocol

    log = encode_events(uneven_due_log(n_users=16, n_days=24))
    lines = []
    models = model_factories("learned_ranker", "epochs=2,batch=16,hidden=16,embedding=4,tifu_k=10,threads=1",
                             log_line=lines.append)
    res = run_event_protocol(log, n_boot=20, log_line=lines.append, models=models)
    assert any(f"against {res.best}" in line for line in lines)
    assert sum("chosen" in line for line in lines) == 1


def test_repeat_explore_mixture_is_a_distribution_and_torch_and_numpy_agree():
    import torch

    from interest_lib.models.event_ranker import _mixture

    rng = np.random.default_rng(0)
    repeat, explore, gate = rng.normal(size=(3, 6)), rng.normal(size=(3, 6)), rng.normal(size=(3, 1))
    ever = np.array([[False, True, True, False, False, True]] * 3)
    lp = _mixture(np, repeat, explore, gate, ever)
    lt = _mixture(torch, *(torch.tensor(a) for a in (repeat, explore, gate, ever)))
    np.testing.assert_allclose(lp, lt.numpy(), atol=1e-10)
    p = np.exp(lp)
    g = 1 / (1 + np.exp(-gate[:, 0]))
    np.testing.assert_allclose(p[:, 1:].sum(axis=1), 1.0, atol=1e-9)  # column 0 (padding) excluded
    np.testing.assert_allclose(p[:, ever[0]].sum(axis=1), g, atol=1e-9)  # P(repeat) = the gate
    # within each part, the order of its own head
    assert (np.argsort(lp[:, ever[0]]) == np.argsort(repeat[:, ever[0]])).all()


def test_repeat_gate_ranker_scores_the_same_in_torch_and_numpy():
    import torch

    log = encode_events(replenishment_log(n_users=10, n_days=12))
    ranker = LearnedRanker(RankerParams(epochs=2, batch=8, hidden=8, embedding=2, tifu_k=5, threads=1,
                                        repeat_gate=True), log_line=lambda s: None)
    ranker.fit(log, log.upto(int(log.ts[len(log) * 3 // 4])))
    now = int(log.ts[-1])
    X = ranker.state.features(np.arange(10), now)
    a, b = ranker._predict(X), ranker.scores(np.arange(10), now)
    np.testing.assert_allclose(a[:, 1:], b[:, 1:], atol=1e-4)
    assert torch.isfinite(torch.tensor(b[:, 1:])).all()


def test_validation_period_fits_models_at_the_validation_cut_and_reads_nothing_after_the_cut():
    from interest_lib.evaluate.event_benchmark import run_event_protocol

    log = encode_events(replenishment_log(n_users=12, n_days=20))
    seen = {}

    class Spy(PersonalFrequency):
        def fit(self, log, n):
            seen["n"] = n
            return super().fit(log, n)

        def scores(self, users, now):
            seen["last"] = max(seen.get("last", now), now)
            return super().scores(users, now)

    res = run_event_protocol(log, n_boot=20, log_line=lambda s: None, models={"spy": lambda reference: Spy()},
                             period="validation")
    assert res.targets.cut == res.validation_cut and res.targets.end == res.cut
    assert seen["n"] == log.upto(res.validation_cut) and res.validation_cut < seen["last"] <= res.cut
    assert set(res.table.model) >= {"spy", res.best}


def part_of_day_log(n_users=30, n_days=40, seed=0):
    """Each user has a morning category and an evening category of their own (drawn from 12, so
    no category means morning for everyone) and shops once a day, at 09:00 or 20:00 at random,
    buying the one of that part of the day. Nothing but the household's own habit per part of
    the day says which of its two categories comes next."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        morning, evening = rng.choice(12, size=2, replace=False)
        for d in range(n_days):
            hour, category = (9, morning) if rng.random() < 0.5 else (20, evening)
            rows.append((u, f"c{category}", T0 + pd.Timedelta(days=d, hours=hour)))
    return pd.DataFrame(rows, columns=["user_id", "category", "ts"])


def test_hour_habit_is_the_households_share_at_this_part_of_the_day():
    log = encode_events(part_of_day_log(n_users=3, n_days=10))
    n = log.upto(int(log.ts[len(log) // 2]))
    state = FeatureState(tifu_k=2, hour_habit=True).fit(log, n)
    users = log.user[:n]
    morning_ts = int(T0.value + 30 * 86400 * 10**9 + 9 * 3600 * 10**9)
    feature = state.features(np.arange(3), morning_ts)[:, :, len(FEATURES)]
    for u in range(3):
        bought_in_the_morning = {int(c) for c, t in zip(log.category[:n][users == u], log.ts[:n][users == u])
                                 if pd.Timestamp(int(t)).hour == 9}
        shares = np.expm1(feature[u]) / 100
        assert {int(c) for c in np.flatnonzero(shares > 0)} == bought_in_the_morning
        assert shares.sum() == pytest.approx(1.0)


def test_ranker_with_hour_habit_learns_each_households_part_of_the_day():
    log = encode_events(part_of_day_log())
    targets = make_targets(log, time_cut(log.ts))
    ranker = LearnedRanker(RankerParams(epochs=10, batch=16, hidden=32, embedding=4, tifu_k=10, threads=1,
                                        hour_habit=True), log_line=lambda s: None)
    # One target per basket, one of the household's two categories: frequency alone is a coin flip
    # between rank 1 and 2 (about (1 + 1/log2(3)) / 2 = 0.82). (Without the habit feature the ranker
    # learns it too, from the hour and the time since each category's last purchase: on this log
    # each category's last purchase gives its part of the day away; Complete Journey's validation
    # period measured what the habit adds there, docs/event_protocol.md.)
    assert ndcg(PersonalFrequency(decay=0.9, unit="basket", binary=True), log, targets) < 0.87
    assert ndcg(ranker, log, targets) > 0.97
    assert ranker.net.mlp[0].in_features == len(FEATURES) + 1 + 4  # the habit column and the embedding


def test_replay_larger_than_max_train_gb_trains_on_the_latest_baskets_that_fit():
    log = encode_events(replenishment_log(n_users=12, n_days=30))
    n = log.upto(int(log.ts[-1]))
    lines = []
    width = log.num_categories + 1
    per_basket = width * (len(FEATURES) + 1) * 4  # float32 features, the hour habit included
    fits = 100
    ranker = LearnedRanker(RankerParams(epochs=1, batch=16, hidden=8, embedding=2, tifu_k=4, threads=1,
                                        max_train_gb=fits * per_basket / 2**30), log_line=lines.append)
    train = ranker._training_targets(log, time_cut(log.ts, 0.5), int(log.ts[-1]))
    all_after = make_targets(log, time_cut(log.ts, 0.5), end=int(log.ts[-1]))
    assert len(all_after.basket_ts) > fits >= len(train.basket_ts) > fits - 12  # one day's baskets at most cut off
    assert train.basket_ts.min() > all_after.basket_ts.min()  # the latest: the internal cut moved later
    assert (train.basket_ts.max() == all_after.basket_ts.max())
    assert any("training on the latest" in line for line in lines)
    ranker.fit(log, n)  # the capped replay trains and leaves the state at the fit point
    assert ranker.state.n_events.sum() == n


def test_a_fit_larger_than_the_free_memory_stops_first_with_what_it_needs(monkeypatch):
    from interest_lib.errors import InputError
    from interest_lib.models import event_ranker

    log = encode_events(replenishment_log(n_users=12, n_days=30))
    n = log.upto(int(log.ts[-1]))
    params = RankerParams(epochs=1, batch=16, hidden=8, embedding=2, tifu_k=4, threads=1)
    lines = []
    monkeypatch.setattr(event_ranker, "available_memory_gib", lambda: 64.0)
    LearnedRanker(params, log_line=lines.append).fit(log, n)
    said = [line for line in lines if "GiB for 12 users" in line]
    assert len(said) == 1 and "(64.0 GiB available)" in said[0], lines
    # the estimate: (state arrays x users x width x 8 + replayed baskets x width x features x 4) x factor
    width, feats = log.num_categories + 1, len(FEATURES) + 1
    replayed = len(make_targets(log, time_cut(log.ts[:n], params.train_quantile), end=int(log.ts[n - 1])).basket_ts)
    expected = event_ranker.PEAK_FACTOR * (12 * width * 8 * (event_ranker.STATE_ARRAYS + 4)
                                           + replayed * width * feats * 4) / 2**30
    assert event_ranker.memory_need_gib(12, log.num_categories, feats, replayed, True) == pytest.approx(expected, rel=1e-12)
    # choosing the switch weight against a baseline adds its state and its scores of the replay
    with_reference = event_ranker.PEAK_FACTOR * (
        12 * width * 8 * (event_ranker.STATE_ARRAYS + 4 + event_ranker.REFERENCE_ARRAYS)
        + replayed * width * (feats * 4 + 8)) / 2**30
    assert event_ranker.memory_need_gib(12, log.num_categories, feats, replayed, True, reference=True) == \
        pytest.approx(with_reference, rel=1e-12)
    # Ta-Feng's subclasses (32,266 users x 2,012, 17,799 replayed baskets): 17.8 GiB measured
    assert 17.0 < event_ranker.memory_need_gib(32_266, 2_012, feats, 17_799, True) < 19.0
    # with less free memory than that: a clear error before any replay, naming what helps
    monkeypatch.setattr(event_ranker, "available_memory_gib", lambda: expected / 2)
    ranker = LearnedRanker(params, log_line=lines.append)
    with pytest.raises(InputError, match=r"needs about .* GiB for 12 users .* coarser category level"):
        ranker.fit(log, n)
    assert not hasattr(ranker.state, "count")  # stopped before the state was built


@pytest.mark.parametrize("rows", [1, 1000, 200_001])
def test_column_mean_and_std_by_blocks_are_numpys_to_the_bit(rows):
    rng = np.random.default_rng(rows)
    flat = (rng.standard_normal((rows, 29)) * rng.uniform(0.1, 10, 29) + rng.uniform(-5, 5, 29)).astype(np.float32)
    mean, std = column_mean_std(flat, block=4096)
    assert mean.dtype == std.dtype == np.float32
    assert np.array_equal(mean, flat.mean(axis=0)) and np.array_equal(std, flat.std(axis=0))


def test_cooccurrence_rows_kept_normalised_as_baskets_arrive_equal_a_full_recomputation():
    log = encode_events(replenishment_log(n_users=8, n_days=12))
    n = log.upto(int(log.ts[len(log) // 3]))
    state = FeatureState(tifu_k=3).fit(log, n)
    col = FEATURES.index("cooccurrence")
    for i in range(n, len(log)):  # one event at a time: the same basket's rows renormalised again
        state.observe(log.user[i:i + 1], log.category[i:i + 1], int(log.ts[i]))
    full = state.cooc / np.maximum(state.cooc.sum(axis=1, keepdims=True), 1.0)
    assert np.array_equal(state.co, full) and state.cooc.sum() > 0
    now = int(log.ts[-1]) + 1
    share90 = state.decayed["b90"].vectors(np.arange(8), now)
    share90 = share90 / np.maximum(share90.sum(axis=1, keepdims=True), 1e-300)
    expected = np.log1p(100 * (share90 @ full)).astype(np.float32)
    assert np.allclose(state.features(np.arange(8), now)[:, :, col], expected, rtol=1e-6, atol=1e-7)


def test_without_category_identity_categories_differ_only_by_their_features():
    log = encode_events(replenishment_log())
    targets = make_targets(log, time_cut(log.ts))
    ranker = LearnedRanker(RankerParams(epochs=10, batch=16, hidden=32, embedding=4, tifu_k=20, threads=1,
                                        category_identity=False), log_line=lambda s: None)
    learned = ndcg(ranker, log, targets)
    network = ranker.network()
    # every category's row of the first layer and of the output bias is the same: no identity learned
    for key in ("cat1", "b3"):
        assert np.ptp(network[key][1:], axis=0).max() == 0.0
    # the cycles are in the features, so the ranker still finds the due category
    assert learned == pytest.approx((1 + 1 / np.log2(3)) / 2, abs=0.01)
