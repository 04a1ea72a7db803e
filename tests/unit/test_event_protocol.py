"""Event-level protocol and its baselines on tiny hand-made logs with known answers (pure numpy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interest_lib.evaluate.event_benchmark import validation_cut
from interest_lib.evaluate.event_protocol import (
    all_ranks, encode_events, evaluate_model, make_targets, paired_bootstrap_ci, protocol_table,
    score_targets, time_cut,
)
from interest_lib.evaluate.metrics import target_ranks
from interest_lib.models.event_baselines import (
    DecayedFrequency, Markov, NeighbourCache, PersonalFrequency, Popularity, TifuKnn,
)

pytestmark = pytest.mark.unit

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-01")


def frame(rows):
    """Events from (user, category, day offset) triples."""
    return pd.DataFrame([{"user_id": u, "category": c, "ts": T0 + d * DAY} for u, c, d in rows])


def cat_id(log, name):
    return int(np.flatnonzero(log.categories == name)[0]) + 1


def test_encode_names_the_missing_or_null_column():
    df = frame([("u", "a", 0)])
    with pytest.raises(ValueError, match="'category'"):
        encode_events(df.drop(columns="category"))
    df.loc[0, "user_id"] = None
    with pytest.raises(ValueError, match="'user_id'.*null"):
        encode_events(df)


def test_time_cut_is_an_event_time_at_the_quantile():
    ts = np.arange(10) * 10
    assert time_cut(ts, 0.8) == 70  # lower: the 80th percentile falls between 70 and 80
    with pytest.raises(ValueError):
        time_cut(np.array([]))


def test_targets_need_pre_cut_history_and_slices_take_baskets_whole():
    log = encode_events(frame([
        # user A: two baskets of 3 before the cut, then one after
        ("A", "a", 0), ("A", "b", 0), ("A", "c", 0), ("A", "d", 1), ("A", "e", 1), ("A", "f", 1),
        ("A", "a", 3), ("A", "d", 3), ("A", "g", 3), ("A", "g", 3),
        # user B: {a} then a basket of 5 events, so the switch window is that basket alone
        ("B", "a", 0), ("B", "b", 2), ("B", "c", 2), ("B", "d", 2), ("B", "e", 2), ("B", "f", 2),
        ("B", "a", 4), ("B", "b", 4), ("B", "h", 5), ("B", "h", 6),
        # user C: nothing before the cut -> no targets
        ("C", "a", 4),
    ]))
    targets = make_targets(log, cut=int((T0 + 2 * DAY).value))
    got = {(log.users[u], log.categories[c - 1], int(s), int(n))
           for u, c, s, n in zip(targets.user, targets.category, targets.is_switch, targets.is_new)}
    assert got == {
        ("A", "a", 0, 0), ("A", "d", 0, 0), ("A", "g", 1, 1),  # window = baskets day 1 + day 0 (6 events)
        ("B", "a", 1, 0), ("B", "b", 0, 0),  # window = basket day 2 only (5 events): a is a switch
        ("B", "h", 1, 1),  # day 5: first h; the window (day 4 + day 2) lacks it
        ("B", "h", 0, 0),  # day 6: the history grew through the test period
    }
    assert len(targets) == 8  # g twice
    assert "C" not in {log.users[u] for u in targets.user}
    assert targets.slice_mask("all").all() and targets.slice_mask("new").sum() == 3


def test_a_basket_never_sees_its_own_items():
    # user u bought a, then basket {b, b, c}; if same-timestamp items leaked, b would rank first
    log = encode_events(frame([("u", "a", 0), ("v", "c", 0), ("v", "c", 0), ("v", "b", 0),
                               ("u", "b", 2), ("u", "b", 2), ("u", "c", 2)]))
    targets = make_targets(log, cut=int(T0.value))
    for model in (PersonalFrequency(prior=1e-6), DecayedFrequency(), TifuKnn(k=1, alpha=0.9)):
        ranks = evaluate_model(model, log, targets)
        by_cat = dict(zip(log.categories[targets.category - 1], ranks))
        # a (own history) first, then by popularity so far (c twice, b once) -> c 2nd, b 3rd
        assert by_cat == {"b": 3, "c": 2}, model.name


def test_answers_do_not_depend_on_the_order_inside_a_basket():
    # Reversing the category names reverses the order of items inside every basket; a model or a
    # slice that used that order (e.g. "the last item") would change its answers.
    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(6)}", f"c{rng.integers(40):02d}", int(d)) for d in rng.integers(0, 30, 400)]
    df = frame(rows)
    flipped = df.assign(category=df.category.map(lambda c: f"c{39 - int(c[1:]):02d}"))
    results = []
    for data in (df, flipped):
        log = encode_events(data)
        targets = make_targets(log, time_cut(log.ts), switch_window=5)
        names = log.categories[targets.category - 1]
        if data is flipped:
            names = np.array([f"c{39 - int(c[1:]):02d}" for c in names])
        order = np.lexsort((names, targets.basket_ts[targets.basket], targets.user))
        per_model = [evaluate_model(m, log, targets)[order] for m in
                     (Popularity(), DecayedFrequency(), DecayedFrequency(0.8, "basket"), Markov(),
                      PersonalFrequency(0.9, "day", False, 0.05), TifuKnn(k=2))]
        results.append((targets.is_switch[order], targets.is_new[order], per_model))
    assert results[0][0].sum() > 0 and results[0][1].sum() > 0
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(a, b)


def test_per_event_decay_gives_one_weight_to_a_basket():
    log = encode_events(frame([("u", "a", 0), ("u", "b", 1), ("u", "c", 1), ("u", "x", 2)]))
    targets = make_targets(log, cut=int((T0 + DAY).value))
    model = DecayedFrequency(decay=0.5, unit="event", prior=0.0)
    scores = score_targets(model, log, targets)[0]
    a, b, c = (cat_id(log, n) for n in "abc")
    assert scores[b] == scores[c] == 1.0 and scores[a] == 0.25  # a is 2 events old, b and c 0
    per_basket = score_targets(DecayedFrequency(decay=0.5, unit="basket", prior=0.0), log, targets)[0]
    assert per_basket[a] == 0.5 and per_basket[b] == 1.0
    per_day = score_targets(DecayedFrequency(decay=0.5, unit="day", prior=0.0), log, targets)[0]
    assert per_day[a] == pytest.approx(0.25) and per_day[b] == pytest.approx(0.5)  # scored on day 2


def test_popularity_counts_only_earlier_timestamps_of_all_users():
    log = encode_events(frame([("u", "a", 0), ("v", "b", 1), ("v", "b", 1), ("w", "c", 2),
                               ("u", "c", 2), ("u", "b", 3)]))
    targets = make_targets(log, cut=int(T0.value))
    scores = score_targets(Popularity(), log, targets)
    a, b, c = (cat_id(log, n) for n in "abc")
    # day 2 (u's basket {c}): a 1, b 2, c 0 (w's c shares the timestamp); day 3: c 2
    np.testing.assert_array_equal(scores[:, [a, b, c]], [[1, 2, 0], [1, 2, 2]])


def test_markov_uses_consecutive_baskets_of_each_user():
    # transitions: {a} -> {b, c} (u), {a} -> {b} (v), {b} -> {d} (u, test period)
    log = encode_events(frame([("u", "a", 0), ("u", "b", 1), ("u", "c", 1), ("v", "a", 0), ("v", "b", 1),
                               ("w", "a", 1), ("w", "d", 2), ("u", "d", 2), ("u", "b", 3)]))
    targets = make_targets(log, cut=int((T0 + DAY).value))
    scores = score_targets(Markov(prior=0.0), log, targets)
    a, b, c, d = (cat_id(log, n) for n in "abcd")
    rows = {(log.users[u], int(t)): s for u, t, s in zip(targets.basket_user, targets.basket_ts, scores)}
    day2 = (T0 + 2 * DAY).value
    # u's last basket {b, c}: neither b nor c was ever a source -> nothing; w's last {a}: b 2/3, c 1/3
    assert rows[("u", day2)].sum() == 0
    np.testing.assert_allclose(rows[("w", day2)][[a, b, c, d]], [0, 2 / 3, 1 / 3, 0])
    # day 3: u's last basket {d}; d never a source -> 0. The b->d, c->d transitions were added.
    model = Markov(prior=0.0)
    score_targets(model, log, targets)
    assert model.transitions[b, d] == 1 and model.transitions[c, d] == 1 and model.transitions[a, d] == 1


def test_tifu_neighbours_lift_what_similar_users_buy():
    log = encode_events(frame([("u", "a", 0), ("v", "a", 0), ("v", "z", 0), ("w", "q", 0), ("w", "q", 0),
                               ("w", "q", 1), ("u", "z", 2)]))
    targets = make_targets(log, cut=int((T0 + DAY).value))
    z, q = cat_id(log, "z"), cat_id(log, "q")
    alone = score_targets(PersonalFrequency(prior=1e-6), log, targets)[0]
    knn = score_targets(TifuKnn(k=1, alpha=0.5, prior=1e-6), log, targets)[0]
    assert alone[q] > alone[z]  # popularity prior alone prefers q (3 events)
    assert knn[z] == pytest.approx(0.25, abs=1e-5) and knn[z] > knn[q]  # v (most similar) bought z


def test_all_ranks_match_target_ranks_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 9)).astype(float)
    for col in range(1, 9):
        np.testing.assert_array_equal(all_ranks(scores)[:, col - 1], target_ranks(scores, np.full(50, col)))


def test_bootstrap_resamples_users_not_targets():
    assert paired_bootstrap_ci(np.full(20, 0.6), np.full(20, 0.5), np.arange(20)) == pytest.approx((0.1, 0.1, 0.1))
    # user 0 gains 1 on 10 targets, user 1 loses 1 on 10: drawing 2 users gives -1, 0 or +1
    a, b = np.r_[np.ones(10), np.zeros(10)], np.r_[np.zeros(10), np.ones(10)]
    users = np.repeat([0, 1], 10)
    diff, lo, hi = paired_bootstrap_ci(a, b, users, n_boot=2000)
    assert (diff, lo, hi) == (0.0, -1.0, 1.0)
    _, lo_t, hi_t = paired_bootstrap_ci(a, b, np.arange(20), n_boot=2000)  # targets as clusters
    assert -0.6 < lo_t < -0.2 and 0.2 < hi_t < 0.6


def test_protocol_table_compares_with_the_reference():
    log = encode_events(frame([("u", "a", 0), ("u", "a", 1), ("v", "b", 0), ("v", "b", 1), ("v", "a", 1)]))
    targets = make_targets(log, cut=int(T0.value))
    ranks = {"pop": evaluate_model(Popularity(), log, targets),
             "own": evaluate_model(PersonalFrequency(), log, targets)}
    table = protocol_table(ranks, targets, reference="pop", n_boot=50).set_index(["model", "slice", "metric"])
    # day 1: u repeats a (own rank 1), v repeats b (1) and tries a (2); popularity so far ties a and b
    assert table.loc[("own", "all", "hr@1"), "value"] == pytest.approx(2 / 3)
    assert table.loc[("pop", "all", "hr@1"), "value"] == 0.0  # ties count against the target
    assert table.loc[("own", "all", "hr@1"), "diff"] == pytest.approx(2 / 3)
    assert table.loc[("pop", "all", "hr@1"), "diff"] == 0.0
    assert table.loc[("own", "new", "mrr"), "value"] == 0.5 and table.loc[("own", "new", "mrr"), "n"] == 1
    with pytest.raises(ValueError, match="reference"):
        protocol_table(ranks, targets, reference="nope")


def test_validation_cut_reads_only_events_before_the_cut():
    log = encode_events(frame([("u", "a", d) for d in range(10)] + [("u", "a", 1000)]))
    cut = int((T0 + 9 * DAY).value)
    assert validation_cut(log, cut) == int((T0 + 7 * DAY).value)


def test_tifu_neighbours_found_in_blocks_of_users_equal_all_users_at_once():
    rng = np.random.default_rng(3)
    rows = [(f"u{u}", f"c{c}", int(d)) for u in range(23) for c, d in zip(rng.integers(0, 9, 12), rng.integers(0, 20, 12))]
    rows += [("late", "c1", 30)]  # no history at the cut: nobody's neighbour
    log = encode_events(frame(rows))
    n = log.upto(int((T0 + 25 * DAY).value))
    whole = TifuKnn(k=4).fit(log, n)
    blocked = TifuKnn(k=4)
    blocked.BLOCK = 5  # 24 users: four blocks of 5 and one of 4
    blocked.fit(log, n)
    by_cells = TifuKnn(k=4)
    by_cells.SIM_CELLS = 24 * 7  # at most 7 users' similarities to all 24 at once
    assert by_cells.block_rows(24) == 7
    by_cells.fit(log, n)
    np.testing.assert_allclose(by_cells.neighbours, whole.neighbours, rtol=1e-12, atol=1e-15)
    # the same neighbours; the mean's last bit may differ with the matmul's shape (bit-identical on
    # Complete Journey's 2,469 households in two blocks)
    np.testing.assert_allclose(blocked.neighbours, whole.neighbours, rtol=1e-12, atol=1e-15)
    assert whole.neighbours.shape == (24, log.num_categories + 1) and whole.neighbours[:23].sum() > 0
    # against the definition, user by user: the mean shares of the k users of highest cosine
    shares = whole.state.vectors(np.arange(24), int(log.ts[n - 1]))
    shares = shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-300)
    late = int(np.flatnonzero(log.users == "late")[0])
    assert shares[late].sum() == 0
    for u in set(range(24)) - {late}:
        cos = [shares[u] @ shares[v] / np.linalg.norm(shares[u]) / np.linalg.norm(shares[v])
               if v != u and v != late else -np.inf for v in range(24)]
        top = np.argsort(cos)[::-1][:4]
        np.testing.assert_allclose(whole.neighbours[u], shares[top].mean(axis=0), rtol=1e-12, atol=1e-15)


def test_tifu_blocks_shrink_with_many_users_and_stay_whole_on_complete_journeys_size():
    tifu = TifuKnn()
    assert tifu.block_rows(2_469) == tifu.block_rows(32_266) == tifu.BLOCK  # Complete Journey, Ta-Feng
    assert tifu.block_rows(206_209) * 206_209 <= tifu.SIM_CELLS < (tifu.block_rows(206_209) + 1) * 206_209
    assert tifu.block_rows(10**9) == 1


def test_tifu_fits_that_differ_in_alpha_share_one_neighbour_search_and_score_the_same():
    rng = np.random.default_rng(5)
    log = encode_events(frame([(f"u{u}", f"c{c}", int(d)) for u in range(30)
                               for c, d in zip(rng.integers(0, 12, 15), rng.integers(0, 40, 15))]))
    targets = make_targets(log, time_cut(log.ts, 0.8))
    cache = NeighbourCache()
    searches = []
    original = TifuKnn._neighbour_means

    def counted(self, shares):
        searches.append(self.k)
        return original(self, shares)

    TifuKnn._neighbour_means = counted
    try:
        for k in (3, 8):
            for alpha in (0.5, 0.9):
                alone = score_targets(TifuKnn(k=k, alpha=alpha), log, targets)
                shared = score_targets(TifuKnn(k=k, alpha=alpha, cache=cache), log, targets)
                np.testing.assert_array_equal(shared, alone)
    finally:
        TifuKnn._neighbour_means = original
    # four fits alone (one search each), and with the cache one search per k
    assert searches == [3, 3, 3, 8, 8, 8]
    # another history under the same settings is searched again, not served from the cache
    other = encode_events(frame([(f"u{u}", f"c{(u + d) % 5}", d) for u in range(30) for d in range(30)]))
    TifuKnn(k=8, cache=cache).fit(other, other.upto(int((T0 + 20 * DAY).value)))
    assert cache.key[0][0] == other.upto(int((T0 + 20 * DAY).value))
