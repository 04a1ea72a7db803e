"""compare_windows (the per-row step of migration detection) on distributions with a known answer."""

import math

import pytest

from interest_lib.features.migrations import compare_windows, migration_kind

pytestmark = pytest.mark.unit


def test_a_move_from_a_to_b_confirmed_by_the_next_window():
    # P = {a: 1}; window 1 = {b: 1} (4 events), window 2 = {b: .5, a: .5} (4 events): Q = {b: .75, a: .25}
    got = compare_windows(["a"], [1.0], ["b"], [1.0], 4, ["b", "a"], [0.5, 0.5], 4, active_share=0.1)
    frm, to, js, to_before, to_after, from_before, from_after, lost, gained = got
    expected_js = 0.5 * math.log2(1 / 0.625) + 0.5 * 0.25 * math.log2(0.25 / 0.625) + 0.5 * 0.75 * 1.0
    assert (frm, to) == ("a", "b")
    assert js == pytest.approx(expected_js, abs=1e-12)
    assert (to_before, to_after, from_before, from_after) == (0.0, 0.75, 1.0, 0.25)
    assert (lost, gained) == (["a"], ["b"])
    assert migration_kind(to_before, from_after, 0.1) == "new_interest"
    assert migration_kind(to_before, from_after, 0.3) == "abrupt"


def test_weights_ties_and_empty_sides():
    # 1 event on {x: 1} and 3 on {y: 1/3, z: 2/3}: Q = {z: .5, x: .25, y: .25}; x and y tie -> id order
    # P = {z: .5, x: .5}: x lost .25 (> a = .2), y gained .25
    frm, to, js, *_, lost, gained = compare_windows(
        ["z", "x"], [0.5, 0.5], ["x"], [1.0], 1, ["z", "y"], [2 / 3, 1 / 3], 3, active_share=0.2)
    assert (frm, to) == ("z", "z") and lost == ["x"] and gained == ["y"]
    # the tie between x and y is broken by id: y would be gained before x if x had gained too
    *_, gained = compare_windows(["z"], [1.0], ["x"], [1.0], 1, ["z", "y"], [2 / 3, 1 / 3], 3, active_share=0.2)
    assert gained == ["x", "y"]
    assert 0 < js < 1
    # identical distributions: divergence 0; no profile or no window: no from / to
    assert compare_windows(["a", "b"], [0.6, 0.4], ["a", "b"], [0.6, 0.4], 5, None, None, 0, 0.1)[2] == 0.0
    assert compare_windows(None, None, ["a"], [1.0], 3, ["a"], [1.0], 3, 0.1)[0] is None
    assert compare_windows(["a"], [1.0], None, None, 3, None, None, 3, 0.1)[1] is None
