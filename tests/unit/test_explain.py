"""Reasons of scored users and recommendations, on a hand-made sequence whose reason is known."""

import numpy as np
import pytest

from interest_lib.scoring.explain import (
    MAX_CHARS, category_evidence, explain_batch, new_session_bucket, recent_sessions, window_shares,
)
from interest_lib.scoring.recommend import EXPLOIT, EXPLORE

pytestmark = pytest.mark.unit

KEYS = np.array(["", "sports/running", "baby/strollers", "home/kitchen", "garden/seeds"], dtype=object)
BUCKET = new_session_bucket(30)  # gaps of 30 minutes or more start a session
S, C = BUCKET, 2                 # a session-starting gap, a gap of 1-5 minutes (same session)


def _user():
    """6 sessions: running, running, strollers, running+strollers, strollers, strollers (newest last);
    windows: [running 100%], then [running 40%, strollers 60%] (the latest)."""
    ev_category = np.array([0, 0, 1, 1, 1, 2, 1, 2, 2, 2, 2])
    ev_interval = np.array([0, 0, 1, C, S, S, S, C, S, S, C])  # 1 = the user's first event
    win_category = np.array([0, 0, 1, 0, 2, 1])                # 3 windows x top-2, oldest first
    win_share = np.array([0, 0, 1.0, 0, 0.6, 0.4])
    return ev_category, ev_interval, win_category, win_share


def test_sessions_and_windows_of_a_hand_made_sequence():
    ev_category, ev_interval, win_category, win_share = _user()
    assert BUCKET == 5
    sessions = recent_sessions(ev_category, ev_interval, BUCKET, last=5)
    assert sessions == [{1}, {2}, {1, 2}, {2}, {2}]
    assert window_shares(win_category, win_share, 2) == [{1: 1.0}, {2: 0.6, 1: 0.4}]
    windows = window_shares(win_category, win_share, 2)
    assert category_evidence(2, sessions, windows) == "4 of last 5 sessions, new in latest window"
    assert category_evidence(1, sessions, windows) == "2 of last 5 sessions, share 100%->40%"
    assert category_evidence(3, sessions, windows) == "0 of last 5 sessions, not in past windows"
    assert category_evidence(1, sessions, [{1: 1.0}, {2: 1.0}, {3: 1.0}]) == \
        "2 of last 5 sessions, last seen 2 windows ago"


def test_reasons_of_the_migration_and_each_recommendation():
    ev_category, ev_interval, win_category, win_share = _user()
    arrays = {"ev_category": ev_category[None], "ev_interval": ev_interval[None],
              "win_category": win_category[None], "win_share": win_share[None]}
    next_probs = np.array([[0, 0.2, 0.5, 0.25, 0.05]])
    forecast = np.array([[0, 0.3, 0.7, 0, 0]])
    why, rec_why = explain_batch(
        arrays, KEYS, top_k=2, session_bucket=BUCKET,
        next_idx=np.array([[2, 3, 1]]), next_p=np.array([[0.5, 0.25, 0.2]]), p_switch=np.array([0.3]),
        rec_idx=np.array([[2, 1, 3]]), rec_kind=np.array([[EXPLOIT, EXPLOIT, EXPLORE]]),
        forecast=forecast, next_probs=next_probs)
    assert why == ["next baby/strollers (p 0.50): 4 of last 5 sessions, new in latest window; P(switch) 0.30"]
    assert rec_why == [[
        "current interest: 4 of last 5 sessions, new in latest window; forecast 70%",
        "current interest: 2 of last 5 sessions, share 100%->40%; forecast 30%",
        "to explore: P(next) 0.25; 0 of last 5 sessions, not in past windows",
    ]]
    # A predicted move away from the current top interest names where it moves from.
    why, _ = explain_batch(
        arrays, KEYS, 2, BUCKET, np.array([[3]]), np.array([[0.6]]), np.array([0.8]),
        np.array([[3]]), np.array([[EXPLORE]]), forecast, next_probs)
    assert why == ["next home/kitchen (p 0.60): 0 of last 5 sessions, not in past windows; "
                   "P(switch) 0.80 from baby/strollers"]


def test_reasons_are_short_and_name_no_identifier_even_for_long_keys():
    ev_category, ev_interval, win_category, win_share = _user()
    keys = np.array(["", "a" * 300, "b" * 300, "c", "d"], dtype=object)
    arrays = {"ev_category": ev_category[None], "ev_interval": ev_interval[None],
              "win_category": win_category[None], "win_share": win_share[None]}
    why, rec_why = explain_batch(
        arrays, keys, 2, BUCKET, np.array([[2]]), np.array([[0.5]]), np.array([0.9]),
        np.array([[2, 1]]), np.array([[EXPLOIT, EXPLORE]]), np.zeros((1, 5)), np.zeros((1, 5)))
    for text in why + rec_why[0]:
        assert 0 < len(text) <= MAX_CHARS
    # Deterministic: the same inputs give the same reasons.
    again = explain_batch(
        arrays, keys, 2, BUCKET, np.array([[2]]), np.array([[0.5]]), np.array([0.9]),
        np.array([[2, 1]]), np.array([[EXPLOIT, EXPLORE]]), np.zeros((1, 5)), np.zeros((1, 5)))
    assert again == (why, rec_why)


def test_a_user_without_history_gets_a_reason():
    arrays = {"ev_category": np.zeros((1, 4), int), "ev_interval": np.zeros((1, 4), int),
              "win_category": np.zeros((1, 4), int), "win_share": np.zeros((1, 4))}
    why, rec_why = explain_batch(
        arrays, KEYS, 2, BUCKET, np.array([[1]]), np.array([[0.4]]), np.array([0.5]),
        np.array([[1]]), np.array([[EXPLORE]]), np.zeros((1, 5)), np.zeros((1, 5)))
    assert why == ["next sports/running (p 0.40): no history; P(switch) 0.50"]
    assert rec_why == [["to explore: P(next) 0.00; no history"]]
