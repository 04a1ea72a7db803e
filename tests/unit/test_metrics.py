"""Ranking and distribution metrics on hand-computed cases (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from interest_lib.evaluate.metrics import (
    js_divergence, normalise_rows, ranking_metrics, sliced_ranking_metrics, sparse_to_dense,
    stage_accuracy, target_ranks, top_k,
)

pytestmark = pytest.mark.unit

# C = 4; column 0 is padding and must be ignored even when it scores highest.
SCORES = np.array([
    [9.0, 0.5, 0.2, 0.1, 0.2],    # target 1: best real column -> rank 1
    [0.0, 0.1, 0.3, 0.3, 0.2],    # target 2: tied with 3 -> rank 2 (ties count against it)
    [0.0, 0.4, 0.3, 0.2, 0.1],    # target 4: last -> rank 4
    [0.0, 0.25, 0.25, 0.25, 0.25],  # target 3: constant predictor -> rank 4
])
TARGET = np.array([1, 2, 4, 3])
SWITCH = np.array([False, True, True, False])


def test_ranks_ignore_padding_and_break_ties_against_the_target():
    assert target_ranks(SCORES, TARGET).tolist() == [1, 2, 4, 4]


def test_ranking_metrics_match_hand_computation():
    m = ranking_metrics(SCORES, TARGET, ks=(1, 2, 3))
    assert m["n"] == 4
    assert m["hr@1"] == pytest.approx(0.25)
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["hr@3"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(0.25)
    assert m["ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 4) / 4)


def test_default_keys():
    m = ranking_metrics(SCORES, TARGET)
    assert {"hr@1", "hr@5", "hr@10", "ndcg@10", "mrr", "n"} <= set(m)
    assert m["hr@5"] == m["hr@10"] == 1.0  # only 4 categories


def test_constant_predictor_ranks_the_target_last():
    m = ranking_metrics(np.ones((3, 11)), np.array([1, 5, 10]))
    assert m["hr@5"] == 0.0 and m["mrr"] == pytest.approx(0.1)


def test_sliced_metrics_keep_only_switch_rows_in_the_switch_slice():
    m = sliced_ranking_metrics(SCORES, TARGET, SWITCH, ks=(1, 2))
    assert m["all"]["n"] == 4 and m["switch"]["n"] == 2
    assert m["switch"]["hr@1"] == 0.0
    assert m["switch"]["hr@2"] == pytest.approx(0.5)
    assert m["switch"]["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    empty = sliced_ranking_metrics(SCORES, TARGET, np.zeros(4, bool))["switch"]
    assert empty["n"] == 0 and np.isnan(empty["mrr"])


def test_targets_out_of_range_are_rejected():
    with pytest.raises(ValueError):
        ranking_metrics(SCORES, np.array([0, 1, 2, 3]))


def test_top_k_is_descending_and_skips_padding():
    idx, vals = top_k(SCORES, 2)
    assert idx[0].tolist() == [1, 2] or idx[0].tolist() == [1, 4]
    assert idx[2].tolist() == [1, 2]
    assert vals[2].tolist() == [0.4, 0.3]
    assert (idx > 0).all()
    idx_all, vals_all = top_k(SCORES, 10)  # k larger than C: every category
    assert idx_all.shape == (4, 4) and (np.diff(vals_all, axis=1) <= 0).all()
    assert idx_all[2].tolist() == [1, 2, 3, 4]


def test_sparse_to_dense_normalises_and_drops_padding():
    idx = np.array([[0, 2, 3], [1, 1, 0], [0, 0, 0]])
    share = np.array([[0.0, 0.3, 0.1], [0.2, 0.2, 0.5], [0.0, 0.0, 0.0]])
    dense = sparse_to_dense(idx, share, 4)
    assert dense.shape == (3, 5)
    np.testing.assert_allclose(dense[0], [0, 0, 0.75, 0.25, 0])
    np.testing.assert_allclose(dense[1], [0, 1, 0, 0, 0])   # duplicate ids add up; padding share dropped
    np.testing.assert_allclose(dense[2], [0, 0.25, 0.25, 0.25, 0.25])  # empty -> uniform
    with pytest.raises(ValueError):
        sparse_to_dense(np.array([[5]]), np.array([[1.0]]), 4)


def test_normalise_rows_zeroes_padding():
    out = normalise_rows(np.array([[7.0, 1.0, 3.0]]))
    np.testing.assert_allclose(out, [[0, 0.25, 0.75]])


def test_js_divergence_bounds_symmetry_and_a_known_value():
    p = np.array([[0, 1.0, 0, 0], [0, 0.5, 0.5, 0], [0, 1.0, 0, 0]])
    q = np.array([[0, 1.0, 0, 0], [0, 0, 0, 1.0], [0, 0.5, 0.5, 0]])
    js = js_divergence(p, q)
    assert js[0] == 0.0                     # identical
    assert js[1] == pytest.approx(1.0)      # disjoint supports
    # [1, 0] vs [0.5, 0.5]: m = [0.75, 0.25]
    expected = 0.5 * (np.log2(1 / 0.75) + 0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert js[2] == pytest.approx(expected)
    np.testing.assert_allclose(js_divergence(q, p), js)
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(6), 50), rng.dirichlet(np.ones(6), 50)
    assert ((js_divergence(a, b) >= 0) & (js_divergence(a, b) <= 1)).all()
    np.testing.assert_allclose(js_divergence(a, a), 0.0, atol=1e-12)


def test_stage_accuracy_ignores_unknown_targets():
    assert stage_accuracy(np.array([1, 2, 3, 4]), np.array([1, 0, 3, 1])) == pytest.approx(2 / 3)
    assert np.isnan(stage_accuracy(np.array([1]), np.array([0])))
