"""Short, data-built reasons for each scored user's predicted migration and each recommendation.

A reason is built only from the model inputs of the scored row (the same arrays the predictors
read), so it is deterministic, costs no extra pass over the data, and names categories, never
users, items or texts. Two kinds of evidence about a category ``c``:

- **sessions**: in how many of the user's last ``last_sessions`` sessions (split where the
  ``ev_interval`` bucket says a new session starts, as the models split them) ``c`` was browsed;
- **windows**: ``c``'s share of the window profiles (``win_category``/``win_share``, oldest
  first): new in the latest window, its share before -> now, how many windows ago it was last
  seen, or never seen.

Examples: ``next baby/strollers (p 0.42): 3 of last 5 sessions, new in latest window;
P(switch) 0.61 from sports``; a recommendation: ``current interest: 4 of last 5 sessions, share
30%->45%; forecast 40%``. Every reason is at most :data:`MAX_CHARS` characters.
"""

from __future__ import annotations

import numpy as np

from interest_lib.sequence_contract import FIRST_EVENT_BUCKET, new_session_bucket  # noqa: F401  (re-exported)

#: Longest reason stored (characters); longer ones are cut with an ellipsis.
MAX_CHARS = 159
#: Longest category key quoted in a reason; longer keys are cut.
MAX_KEY_CHARS = 40


def recent_sessions(categories: np.ndarray, intervals: np.ndarray, session_bucket: int,
                    last: int = 5) -> list[set[int]]:
    """The category ids of each of the last ``last`` sessions of one left-padded event sequence,
    oldest first (a session starts at the first event and at gaps of ``session_bucket`` or more)."""
    real = categories != 0
    cats, gaps = categories[real], intervals[real]
    starts = np.flatnonzero((gaps >= session_bucket) | (gaps == FIRST_EVENT_BUCKET))
    if len(cats) and (not len(starts) or starts[0] != 0):
        starts = np.concatenate([[0], starts])  # the sequence was cut inside a session
    bounds = list(starts) + [len(cats)]
    sessions = [set(cats[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:])]
    return sessions[-last:]


def window_shares(win_category: np.ndarray, win_share: np.ndarray, top_k: int) -> list[dict[int, float]]:
    """One row's window profiles as {category id: share}, oldest first; padded windows dropped."""
    w = len(win_category) // top_k
    out = []
    for cats, shares in zip(win_category.reshape(w, top_k), win_share.reshape(w, top_k)):
        profile = {int(c): float(s) for c, s in zip(cats, shares) if c != 0}
        if profile:
            out.append(profile)
    return out


def _key(keys: np.ndarray, idx: int) -> str:
    text = str(keys[idx]) if 0 < idx < len(keys) and keys[idx] else "unknown"
    return text if len(text) <= MAX_KEY_CHARS else text[:MAX_KEY_CHARS - 1] + "…"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def category_evidence(category: int, sessions: list[set[int]], windows: list[dict[int, float]]) -> str:
    """'k of last m sessions, <window trend>' for one category of one user."""
    parts = []
    if sessions:
        parts.append(f"{sum(category in s for s in sessions)} of last {len(sessions)} sessions")
    if windows:
        now = windows[-1].get(category, 0.0)
        seen = [i for i, w in enumerate(windows[:-1]) if category in w]
        if now > 0 and not seen:
            parts.append("new in latest window")
        elif now > 0:
            before = windows[-2].get(category, 0.0) if len(windows) > 1 else 0.0
            parts.append(f"share {before:.0%}->{now:.0%}")
        elif seen:
            ago = len(windows) - 1 - seen[-1]
            parts.append(f"last seen {ago} window{'s' if ago > 1 else ''} ago")
        else:
            parts.append("not in past windows")
    return ", ".join(parts) or "no history"


def explain_batch(arrays: dict, keys: np.ndarray, top_k: int, session_bucket: int, next_idx: np.ndarray,
                  next_p: np.ndarray, p_switch: np.ndarray, rec_idx: np.ndarray, rec_kind: np.ndarray,
                  forecast: np.ndarray, next_probs: np.ndarray, last_sessions: int = 5) -> tuple[list, list]:
    """Reasons for a scored batch.

    Args:
        arrays: the batch's model inputs (``ev_category``, ``ev_interval``, ``win_category``,
            ``win_share``: 2-D arrays, one row per user).
        keys: vocabulary index -> category key.
        top_k: categories per window in ``win_category``.
        session_bucket: first ``ev_interval`` bucket that starts a session (:func:`new_session_bucket`).
        next_idx, next_p: ranked next categories and probabilities [N, top]; p_switch: [N].
        rec_idx, rec_kind: recommended category ids and ``exploit``/``explore`` [N, n].
        forecast, next_probs: dense [N, C+1] forecast and next-category distributions.

    Returns:
        (one migration reason per user, one list of reasons per user aligned with ``rec_idx``).
    """
    from interest_lib.scoring.recommend import EXPLOIT

    migration, recs = [], []
    for i in range(len(next_idx)):
        sessions = recent_sessions(arrays["ev_category"][i], arrays["ev_interval"][i], session_bucket, last_sessions)
        windows = window_shares(arrays["win_category"][i], arrays["win_share"][i], top_k)
        top = int(next_idx[i, 0])
        text = f"next {_key(keys, top)} (p {next_p[i, 0]:.2f}): {category_evidence(top, sessions, windows)}"
        text += f"; P(switch) {p_switch[i]:.2f}"
        if windows:
            current_top = max(windows[-1].items(), key=lambda kv: (kv[1], -kv[0]))[0]
            if current_top != top:
                text += f" from {_key(keys, current_top)}"
        migration.append(_clip(text))
        row = []
        for c, kind in zip(rec_idx[i], rec_kind[i]):
            c = int(c)
            evidence = category_evidence(c, sessions, windows)
            if kind == EXPLOIT:
                label = "current interest" if windows and c in windows[-1] else "forecast interest"
                row.append(_clip(f"{label}: {evidence}; forecast {forecast[i, c]:.0%}"))
            else:
                row.append(_clip(f"to explore: P(next) {next_probs[i, c]:.2f}; {evidence}"))
        recs.append(row)
    return migration, recs
