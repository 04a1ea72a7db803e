"""The event stream behind the event-level protocol (pure numpy/pandas, below the stages):
encoded events, the time cut, the targets of a period and their order-free streaming.

Models (:mod:`interest_lib.models.event_baselines`, :mod:`interest_lib.models.event_ranker`) and
the protocol (:mod:`interest_lib.evaluate.event_protocol`) both use it: a model that learns from
the history replays it exactly as the protocol scores the test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SLICES = ("all", "switch", "new")
SWITCH_WINDOW = 5  # "switch": the category is not among the categories of the user's last 5 events


@dataclass(frozen=True)
class EventLog:
    """Encoded events sorted by time: ``user`` 0..U-1, ``category`` 1..C (0 is padding), ``ts`` int64
    nanoseconds. Events sharing a timestamp are sorted by user then category; that order means
    nothing and no model or label may depend on it. ``users`` / ``categories`` hold the original
    ids and names (index ``i`` for user ``i``, index ``c - 1`` for category ``c``)."""

    user: np.ndarray
    category: np.ndarray
    ts: np.ndarray
    users: np.ndarray
    categories: np.ndarray

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def __len__(self) -> int:
        return len(self.ts)

    def upto(self, t: int) -> int:
        """Number of events with timestamp ``<= t`` (they are the first ones of the log)."""
        return int(np.searchsorted(self.ts, t, side="right"))


def encode_events(df: pd.DataFrame, user_col: str = "user_id", category_col: str = "category",
                  ts_col: str = "ts") -> EventLog:
    """An :class:`EventLog` from a frame of events (one row per event; ``ts_col`` datetime-like or
    integer nanoseconds). Raises ValueError naming the column when one is missing or has nulls."""
    for col in (user_col, category_col, ts_col):
        if col not in df.columns:
            raise ValueError(f"events frame has no column {col!r} (columns: {', '.join(map(str, df.columns))})")
        if df[col].isna().any():
            raise ValueError(f"events column {col!r} has {int(df[col].isna().sum())} null values")
    ts = df[ts_col]
    ts = (pd.to_datetime(ts).astype("datetime64[ns]").astype(np.int64) if not pd.api.types.is_integer_dtype(ts)
          else ts.astype(np.int64)).to_numpy()
    user, users = pd.factorize(df[user_col], sort=True)
    cat, cats = pd.factorize(df[category_col], sort=True)
    cat = cat.astype(np.int64) + 1
    order = np.lexsort((cat, user, ts))
    return EventLog(user=user.astype(np.int64)[order], category=cat[order], ts=ts[order],
                    users=np.asarray(users), categories=np.asarray(cats))


def time_cut(ts: np.ndarray, quantile: float = 0.8) -> int:
    """The cut: the ``quantile`` of event times (``method='lower'``, so it is an event's own time).
    Events at or before it are history; events after it are targets."""
    if len(ts) == 0:
        raise ValueError("no events: cannot place a time cut")
    return int(np.quantile(np.asarray(ts), quantile, method="lower"))


@dataclass
class Targets:
    """The targets of one period ``(cut, end]``. A *basket* is the set of a user's events at one
    timestamp; ``basket_user`` / ``basket_ts`` list the target baskets sorted by time then user.
    Per target event: ``basket`` (index into the baskets), ``user``, ``category``, ``is_switch``,
    ``is_new``."""

    cut: int
    end: int
    basket_user: np.ndarray
    basket_ts: np.ndarray
    basket: np.ndarray
    user: np.ndarray
    category: np.ndarray
    is_switch: np.ndarray
    is_new: np.ndarray

    def __len__(self) -> int:
        return len(self.category)

    def slice_mask(self, name: str) -> np.ndarray:
        """Boolean mask of the targets in slice ``all``, ``switch`` or ``new``."""
        if name == "all":
            return np.ones(len(self), dtype=bool)
        if name in ("switch", "new"):
            return getattr(self, f"is_{name}")
        raise ValueError(f"unknown slice {name!r}; known: {', '.join(SLICES)}")


def make_targets(log: EventLog, cut: int, end: int | None = None,
                 switch_window: int = SWITCH_WINDOW) -> Targets:
    """Targets of the period ``(cut, end]`` (``end`` defaults to the last event): the events after
    the cut of users with at least one event at or before it.

    Slices, both order-free (they only use earlier timestamps):

    - ``new``: the user never had the category before (any earlier timestamp, test period included);
    - ``switch``: the category is not among the categories of the user's last ``switch_window``
      events. Ties: the user's most recent baskets are taken *whole*, newest first, until they
      cover at least ``switch_window`` events (all events at the timestamps of the last 5 events).
    """
    end = int(log.ts[-1]) if end is None else int(end)
    n_end = log.upto(end)
    user, cat, ts = log.user[:n_end], log.category[:n_end], log.ts[:n_end]
    has_history = np.zeros(log.num_users, dtype=bool)
    has_history[user[ts <= cut]] = True

    # Baskets in user-major order: b = index of (user, ts); first_event[b] = events before it.
    order = np.lexsort((cat, ts, user))
    u, c, t = user[order], cat[order], ts[order]
    new_basket = np.r_[True, (u[1:] != u[:-1]) | (t[1:] != t[:-1])]
    b = np.cumsum(new_basket) - 1
    first_event = np.flatnonzero(new_basket)
    b_user = u[first_event]
    user_first_basket = np.full(log.num_users, -1)
    user_first_basket[b_user[::-1]] = np.arange(len(b_user))[::-1]

    # Oldest basket of the switch window of each basket: the newest j with >= W events in j..b-1.
    j = np.searchsorted(first_event, first_event - switch_window, side="right") - 1
    window_start = np.maximum(j, user_first_basket[b_user])

    # For each event: the user's previous basket holding the same category (-1 if none).
    o2 = np.lexsort((b, c, u))
    su, sc, sb = u[o2], c[o2], b[o2]
    same_uc = np.r_[False, (su[1:] == su[:-1]) & (sc[1:] == sc[:-1])]
    group_start = ~(same_uc & np.r_[False, sb[1:] == sb[:-1]])  # first event of each (u, c, b)
    first_of_group = np.maximum.accumulate(np.where(group_start, np.arange(len(sb)), 0))
    prev_pos = first_of_group - 1
    prev_b_sorted = np.where((prev_pos >= 0) & same_uc[first_of_group], sb[np.maximum(prev_pos, 0)], -1)
    prev_b = np.empty_like(prev_b_sorted)
    prev_b[o2] = prev_b_sorted

    is_target = (t > cut) & has_history[u]
    tb = b[is_target]
    basket_ids, basket_index = np.unique(tb, return_inverse=True)
    # Re-sort target baskets by time, then user (the order score_targets streams them in).
    bt_order = np.lexsort((b_user[basket_ids], t[first_event[basket_ids]]))
    rank_of = np.empty_like(bt_order)
    rank_of[bt_order] = np.arange(len(bt_order))
    basket_ids = basket_ids[bt_order]
    pb = prev_b[is_target]
    ev_order = np.lexsort((c[is_target], rank_of[basket_index]))
    return Targets(
        cut=int(cut), end=end,
        basket_user=b_user[basket_ids], basket_ts=t[first_event[basket_ids]],
        basket=rank_of[basket_index][ev_order], user=u[is_target][ev_order], category=c[is_target][ev_order],
        is_switch=(pb < window_start[tb])[ev_order], is_new=(pb < 0)[ev_order],
    )


def score_targets(model, log: EventLog, targets: Targets) -> np.ndarray:
    """``[baskets, C+1]`` scores of every target basket: the model is fitted on the events at or
    before the cut, then the period is streamed one timestamp at a time: first the target
    baskets of that timestamp are scored, then all its events are observed (so events sharing a
    timestamp never see each other, and later targets see the grown history)."""
    n0, n1 = log.upto(targets.cut), log.upto(targets.end)
    model.fit(log, n0)
    out = np.zeros((len(targets.basket_ts), log.num_categories + 1))
    ts = log.ts[n0:n1]
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) + n0
    ends = np.r_[starts[1:], n1]
    lo = np.searchsorted(targets.basket_ts, log.ts[starts], side="left")
    hi = np.searchsorted(targets.basket_ts, log.ts[starts], side="right")
    for a, e, bl, bh in zip(starts.tolist(), ends.tolist(), lo.tolist(), hi.tolist()):
        now = int(log.ts[a])
        if bh > bl:
            out[bl:bh] = model.scores(targets.basket_user[bl:bh], now)
        model.observe(log.user[a:e], log.category[a:e], now)
    return out
