"""One user's events, simulated with numpy: sessions, funnel, categories, items, texts.

:func:`simulate_user` works on numbers only (times in seconds, leaf / item / type / source
codes) and is vectorised over the user's events; :func:`format_events` turns the numbers of many
users at once into the raw string columns. Everything random comes from the generator passed
in, which the caller seeds per user, so the output does not depend on partitioning.

The behaviour model:

- Activity: the user's events come in sessions (1 + geometric interactions, mean ~3.3).
  Session start times follow a daily rhythm (quiet nights, busy evenings, +25% at weekends)
  shifted by the user's own ``hour_shift``; sessions never overlap and are at least 40 min
  apart, so gaps between sessions are hours to days. Within a session, consecutive events are
  seconds to minutes apart (log-normal, capped at 20 min).
- Funnel: an *interaction* is one item looked at: a view, then maybe a click (35%), a favourite
  (20% of clicks), a cart (12%) and a purchase (35% of carts), in that order and on the same item;
  a search precedes the interaction (35% at a session's start, 6% later) with a query built
  from the category's words. 15% of purchases get a review 0.5-10 days later (same item).
- Categories: each session has a focus leaf drawn from the user's interest mixture at the
  session's start (plus 10% random exploration); half of its interactions stay on it, the
  rest are fresh draws from the mixture (a session is a mix of a focus and browsing; with a
  single draw per session a user's weekly interest would rest on one or two draws). Items within a leaf follow a Zipf popularity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from interest_lib import schema as S
from interest_lib.generate.catalogue import N_QUERIES, N_REVIEWS, Catalogue, get_catalogue
from interest_lib.generate.trajectories import DAY, SOURCES, Profile, sample_leaves

#: Column order of the funnel matrix, and the EVENT_TYPES code of each column.
_FUNNEL = ("search", "view", "click", "favourite", "cart", "purchase")
_FUNNEL_CODES = np.array([S.EVENT_TYPES.index(t) for t in _FUNNEL], dtype=np.int8)
_SEARCH = S.EVENT_TYPES.index("search")
_PURCHASE = S.EVENT_TYPES.index("purchase")
_REVIEW = S.EVENT_TYPES.index("review")

#: Share of a session's interactions on the session's focus leaf.
SESSION_FOCUS = 0.5
#: The event types of an interaction (an item looked at, the unit a category is drawn for): the
#: funnel after its search; reviews come days after a purchase, of the same item.
INTERACTION_TYPES = _FUNNEL[1:]
_HOUR_OF_DAY = np.array([0.20, 0.10, 0.05, 0.05, 0.05, 0.10, 0.30, 0.60, 0.80, 0.90, 0.90, 1.00,
                         1.10, 1.00, 0.90, 0.90, 1.00, 1.10, 1.30, 1.60, 1.80, 1.70, 1.20, 0.60])
_WEEKEND_FACTOR = 1.25
_MIN_SESSION_GAP_S = 40 * 60
_REVIEW_SHARE = 0.15


def _starts(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the positions where a run of equal ``keys`` begins."""
    out = np.empty(len(keys), dtype=bool)
    out[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=out[1:])
    return out
_ITEM_ZIPF = 1.0


@dataclass(frozen=True)
class EventContext:
    """What every user's simulation shares: catalogue, period and precomputed distributions."""

    seed: int
    days: int
    start: dt.date
    cat: Catalogue
    hour_cdfs: np.ndarray    # [7, days*24]: session-time CDF per hour shift -3..+3
    noise_cdf: np.ndarray    # CDF of random exploration over leaves
    item_cdf: np.ndarray     # CDF of an item's rank within its leaf (Zipf)
    texts: np.ndarray        # object[str]: queries, then reviews

    @property
    def period_s(self) -> float:
        """Length of the period in seconds."""
        return self.days * DAY

    @property
    def start_epoch_s(self) -> int:
        """Unix seconds of the period start (UTC midnight)."""
        return int(dt.datetime.combine(self.start, dt.time(), dt.timezone.utc).timestamp())


@lru_cache(maxsize=4)
def get_context(seed: int, items_per_category: int, start_date: str, days: int) -> EventContext:
    """Build (once per process) the shared :class:`EventContext`."""
    start = dt.date.fromisoformat(start_date)
    cat = get_catalogue(seed, items_per_category)
    hours = np.arange(days * 24)
    weekday = (start.weekday() + hours // 24) % 7
    cdfs = []
    for shift in range(-3, 4):
        dens = _HOUR_OF_DAY[(hours - shift) % 24] * np.where(weekday >= 5, _WEEKEND_FACTOR, 1.0)
        cdfs.append(np.cumsum(dens) / dens.sum())
    ranks = np.arange(1, items_per_category + 1, dtype=float)
    item_w = ranks ** -_ITEM_ZIPF
    return EventContext(
        seed=seed, days=days, start=start, cat=cat, hour_cdfs=np.array(cdfs),
        noise_cdf=np.cumsum(cat.leaf_popularity) / cat.leaf_popularity.sum(),
        item_cdf=np.cumsum(item_w) / item_w.sum(),
        texts=np.concatenate([cat.queries, cat.reviews]),
    )


def _session_starts(ctx: EventContext, prof: Profile, rng: np.random.Generator,
                    n_sessions: int) -> np.ndarray:
    """Sorted session start times (s), following the user's daily rhythm (and burst)."""
    cdf = ctx.hour_cdfs[prof.hour_shift + 3]
    hour = np.minimum(np.searchsorted(cdf, rng.random(n_sessions), side="right"), len(cdf) - 1)
    starts = (hour + rng.random(n_sessions)) * 3600.0
    if prof.kind == "burst" and prof.t1 > prof.t0:
        n_burst = min(n_sessions, max(2, round(0.25 * n_sessions)))
        starts[:n_burst] = rng.uniform(prof.t0, prof.t1, n_burst)
    return np.sort(starts)


def _space_sessions(starts: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Push sessions later where needed so each starts >= 40 min after the previous ends."""
    ends = starts + durations
    if len(starts) < 2 or np.all(starts[1:] >= ends[:-1] + _MIN_SESSION_GAP_S):
        return starts
    out = starts.copy()
    for i in range(1, len(out)):
        earliest = out[i - 1] + durations[i - 1] + _MIN_SESSION_GAP_S
        if out[i] < earliest:
            out[i] = earliest
    return out


def simulate_user(ctx: EventContext, prof: Profile, rng: np.random.Generator) -> dict:
    """Simulate one user's events over the period (numbers only, sorted by time).

    Returns:
        dict of equal-length arrays: ``t`` (int64 seconds from the period start, device clock),
        ``leaf`` (leaf index), ``item`` (global item index, -1 for searches), ``etype`` (index
        into EVENT_TYPES), ``source`` (index into SOURCES), ``text`` (index into
        ``ctx.texts``, -1 for none).
    """
    n = prof.n_events
    m = int(n / 1.4) + 8                                   # interactions (enough, then cut)
    sizes = rng.geometric(0.3, size=m)
    sess_of_int = np.repeat(np.arange(m), sizes)[:m]
    first_in_sess = _starts(sess_of_int)
    r = rng.random((m, 5))
    funnel = np.empty((m, 6), dtype=bool)
    funnel[:, 0] = r[:, 0] < np.where(first_in_sess, 0.35, 0.06)   # search
    funnel[:, 1] = True                                            # view
    funnel[:, 2] = r[:, 1] < 0.35                                  # click
    funnel[:, 3] = funnel[:, 2] & (r[:, 2] < 0.20)                 # favourite
    funnel[:, 4] = r[:, 3] < 0.12                                  # cart
    funnel[:, 5] = funnel[:, 4] & (r[:, 4] < 0.35)                 # purchase
    pos = np.flatnonzero(funnel.ravel())[:n]
    n = len(pos)
    inter = pos // 6
    etype = _FUNNEL_CODES[pos % 6]
    n_int = int(inter[-1]) + 1
    ev_sess = sess_of_int[inter]
    n_sess = int(ev_sess[-1]) + 1

    # Times: session starts + offsets within the session.
    new_inter = _starts(inter)
    gaps = np.where(new_inter, rng.lognormal(np.log(45.0), 0.8, n),
                    rng.lognormal(np.log(12.0), 0.6, n))
    gaps = np.clip(gaps, 2.0, 1200.0)
    first_ev = _starts(ev_sess)
    gaps[first_ev] = 0.0
    cum = np.cumsum(gaps)
    sess_first = np.flatnonzero(first_ev)
    offset = cum - cum[sess_first][ev_sess]
    durations = offset[np.append(sess_first[1:] - 1, n - 1)]
    starts = _space_sessions(_session_starts(ctx, prof, rng, n_sess), durations)
    t = starts[ev_sess] + offset

    # Categories and items: session focus + fresh draws, items by Zipf within the leaf.
    sess_leaf = sample_leaves(rng, prof, starts, ctx.noise_cdf)
    fresh = sample_leaves(rng, prof, starts[sess_of_int[:n_int]], ctx.noise_cdf)
    int_leaf = np.where(rng.random(n_int) < SESSION_FOCUS, sess_leaf[sess_of_int[:n_int]], fresh)
    rank = np.minimum(np.searchsorted(ctx.item_cdf, rng.random(n_int), side="right"),
                      ctx.cat.items_per_category - 1)
    int_item = ctx.cat.item_index(int_leaf, rank)
    leaf = int_leaf[inter]
    is_search = etype == _SEARCH
    item = np.where(is_search, -1, int_item[inter])
    text = np.where(is_search, leaf * N_QUERIES + rng.integers(0, N_QUERIES, n), -1)
    sess_src = np.where(rng.random(n_sess) < 0.85, prof.device,
                        rng.integers(0, len(SOURCES), n_sess))
    source = sess_src[ev_sess]

    # Reviews: some purchases get one, days later, same item.
    bought = np.flatnonzero(etype == _PURCHASE)
    reviewed = bought[rng.random(len(bought)) < _REVIEW_SHARE]
    rt = t[reviewed] + rng.uniform(0.5, 10.0, len(reviewed)) * DAY
    keep = rt < ctx.period_s
    reviewed, rt = reviewed[keep], rt[keep]
    n_rev = len(reviewed)
    n_texts_q = ctx.cat.n_leaves * N_QUERIES
    out = {
        "t": np.concatenate([t, rt]),
        "leaf": np.concatenate([leaf, leaf[reviewed]]),
        "item": np.concatenate([item, item[reviewed]]),
        "etype": np.concatenate([etype, np.full(n_rev, _REVIEW, dtype=np.int8)]),
        "source": np.concatenate([source, np.full(n_rev, prof.device)]),
        "text": np.concatenate([text, n_texts_q + leaf[reviewed] * N_REVIEWS
                                + rng.integers(0, N_REVIEWS, n_rev)]),
    }
    order = np.argsort(out["t"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    out["t"] = np.floor(out["t"]).astype(np.int64) + prof.clock_skew_s
    return out


@lru_cache(maxsize=8)
def _seq_strings(width: int, size: int) -> np.ndarray:
    """object array of zero-padded numbers ``0..size-1`` (event-id suffixes)."""
    return np.array([f"{k:0{width}d}" for k in range(size)], dtype=object)


def iso_times(epoch_s: np.ndarray) -> np.ndarray:
    """Unix seconds -> ISO-8601 UTC strings like ``2026-01-05T13:45:12Z`` (object array)."""
    return np.datetime_as_string(epoch_s.astype("datetime64[s]"), unit="s",
                                 timezone="UTC").astype(object)


def iso_dates(epoch_s: np.ndarray) -> np.ndarray:
    """Unix seconds -> UTC dates ``YYYY-MM-DD`` (object array)."""
    return np.datetime_as_string(epoch_s.astype("datetime64[s]").astype("datetime64[D]"),
                                 unit="D").astype(object)


def format_events(ctx: EventContext, users: np.ndarray, sims: list[dict]) -> pd.DataFrame:
    """The raw string columns (:data:`schema.RAW_FIELDS`) of many users' simulated events.

    Args:
        ctx: the shared context.
        users: user index of each simulation.
        sims: :func:`simulate_user` outputs, one per user, same order as ``users``.

    Returns:
        DataFrame of object (str / None) columns in RAW_FIELDS order, plus ``epoch_s`` (int64,
        the event's Unix time) for the caller; event ids are ``e<user:07d><k:06d>`` with ``k``
        the event's rank in the user's history.
    """
    counts = np.array([len(s["t"]) for s in sims], dtype=np.int64)
    num = {key: np.concatenate([s[key] for s in sims]) for key in sims[0]}
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    seq = _seq_strings(6, 100_000 if counts.max() <= 100_000 else 1_000_000)
    user_ids = np.array([f"u{u:07d}" for u in users], dtype=object)
    event_ids = np.array([f"e{u:07d}" for u in users], dtype=object)
    epoch = num["t"] + ctx.start_epoch_s
    item_ok = num["item"] >= 0
    item = np.where(item_ok, num["item"], 0)
    text_ok = num["text"] >= 0
    frame = pd.DataFrame({
        S.EVENT_ID: np.repeat(event_ids, counts) + seq[k],
        S.USER_ID: np.repeat(user_ids, counts),
        S.ITEM_ID: np.where(item_ok, ctx.cat.item_ids[item], None),
        S.CATEGORY_ID: ctx.cat.category_ids[num["leaf"]],
        S.CATEGORY_PATH: ctx.cat.category_paths[num["leaf"]],
        S.EVENT_TYPE: np.array(S.EVENT_TYPES, dtype=object)[num["etype"]],
        S.EVENT_TIME: iso_times(epoch),
        S.TEXT: np.where(text_ok, ctx.texts[np.where(text_ok, num["text"], 0)], None),
        S.PRICE: np.where(item_ok, ctx.cat.item_price_text[item], None),
        S.SOURCE: np.array(SOURCES, dtype=object)[num["source"]],
    })
    frame["epoch_s"] = epoch
    return frame
