"""Realistic dirt on top of clean events: corrupted fields, duplicates, late arrivals.

Which records are dirtied is decided per user from the user's own generator
(:func:`plan_dirt`), so it is deterministic and independent of partitioning. Rules:

- A record is corrupted with probability ``dirt_rate``; the kind of dirt is drawn with the
  shares :data:`DIRT_SHARES`. Each corrupted record has exactly one kind. Dirt *modifies* a
  record, it never adds one.
- Only clean records are duplicated (probability ``duplicate_rate``): the copy is identical
  (same event_id, every field equal), immediately follows the original and lands in the same
  arrival-date file. So the raw count of any dirty shape equals the injected count.
- Only clean records arrive late (probability ``late_rate``): ``arrival_date`` is the event's
  UTC date (as stamped) plus 1-7 days. Otherwise ``arrival_date`` is the stamped date (for
  corrupted times, the date the record really happened).

Dirty value shapes (what ingest must quarantine):

=====================  ===============================================================
kind                   raw value
=====================  ===============================================================
null_user_id           ``user_id`` null
bad_event_time         ``event_time`` one of :data:`BAD_TIMES`
unknown_event_type     ``event_type`` = ``"hover"``
future_event_time      ``event_time`` well formed but 730-760 days after the real time
negative_price         ``price`` = ``"-"`` + the item price (``"-9.99"`` for a search)
nonnumeric_price       ``price`` one of :data:`NONNUMERIC_PRICES`
=====================  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from interest_lib import schema as S
from interest_lib.generate.events import iso_dates, iso_times

DIRT_KINDS = ("null_user_id", "bad_event_time", "unknown_event_type", "future_event_time",
              "negative_price", "nonnumeric_price")
DIRT_SHARES = (0.20, 0.20, 0.20, 0.10, 0.15, 0.15)
BAD_TIMES = ("2026-13-45 99:00", "yesterday", "2026-02-30T10:00:00Z", "05/01/2026 25:61",
             "not a date", "2026-01-05T25:99:00Z")
UNKNOWN_EVENT_TYPE = "hover"
NONNUMERIC_PRICES = ("abc", "N/A", "free")
FUTURE_DAYS = 730
MAX_LATE_DAYS = 7

#: Extra columns of the generated frame (not written to the raw files).
ARRIVAL_DATE = "arrival_date"
DIRT_COL, DUP_COL, LATE_COL = "_dirt", "_dup", "_late"


@dataclass
class DirtPlan:
    """Per-record decisions: dirt kind (0 clean, i+1 = DIRT_KINDS[i]), variant, dup, lateness."""

    kind: np.ndarray       # int8
    variant: np.ndarray    # int64: which malformed value / how many extra future days
    dup: np.ndarray        # bool: emit a second identical copy
    late_days: np.ndarray  # int64: 0 on time, else 1..MAX_LATE_DAYS

    @staticmethod
    def concat(plans: list["DirtPlan"]) -> "DirtPlan":
        """One plan for records concatenated in the same order as ``plans``."""
        return DirtPlan(*(np.concatenate([getattr(p, f) for p in plans])
                          for f in ("kind", "variant", "dup", "late_days")))


def plan_dirt(rng: np.random.Generator, n: int, dirt_rate: float, duplicate_rate: float,
              late_rate: float) -> DirtPlan:
    """Decide, for ``n`` records, which get dirt, are duplicated or arrive late."""
    dirty = rng.random(n) < dirt_rate
    kind = np.zeros(n, dtype=np.int8)
    kind[dirty] = 1 + rng.choice(len(DIRT_KINDS), size=int(dirty.sum()), p=DIRT_SHARES)
    variant = rng.integers(0, 31, n)
    dup = (rng.random(n) < duplicate_rate) & ~dirty
    late = (rng.random(n) < late_rate) & ~dirty
    late_days = np.where(late, rng.integers(1, MAX_LATE_DAYS + 1, n), 0)
    return DirtPlan(kind, variant, dup, late_days)


def apply_dirt(frame: pd.DataFrame, plan: DirtPlan) -> pd.DataFrame:
    """Corrupt, date and duplicate the records of ``frame`` as ``plan`` says.

    Args:
        frame: :func:`events.format_events` output (RAW_FIELDS + ``epoch_s``).
        plan: one decision per row of ``frame``.

    Returns:
        RAW_FIELDS + ``arrival_date`` (``YYYY-MM-DD``) + bookkeeping columns ``_dirt`` (kind
        name or None), ``_dup`` (True on the copy) and ``_late``; duplicates follow originals.
    """
    epoch = frame.pop("epoch_s").to_numpy()
    cols = {name: frame[name].to_numpy(dtype=object, copy=True) for name in frame.columns}
    for code, kind in enumerate(DIRT_KINDS, start=1):
        rows = np.flatnonzero(plan.kind == code)
        if not len(rows):
            continue
        var = plan.variant[rows]
        if kind == "null_user_id":
            cols[S.USER_ID][rows] = None
        elif kind == "bad_event_time":
            cols[S.EVENT_TIME][rows] = np.array(BAD_TIMES, dtype=object)[var % len(BAD_TIMES)]
        elif kind == "unknown_event_type":
            cols[S.EVENT_TYPE][rows] = UNKNOWN_EVENT_TYPE
        elif kind == "future_event_time":
            cols[S.EVENT_TIME][rows] = iso_times(epoch[rows] + (FUTURE_DAYS + var) * 86400)
        elif kind == "negative_price":
            cols[S.PRICE][rows] = np.array(["-" + (p or "9.99") for p in cols[S.PRICE][rows]],
                                           dtype=object)
        elif kind == "nonnumeric_price":
            cols[S.PRICE][rows] = np.array(NONNUMERIC_PRICES, dtype=object)[
                var % len(NONNUMERIC_PRICES)]
    cols[ARRIVAL_DATE] = iso_dates(epoch + plan.late_days * 86400)
    cols[DIRT_COL] = np.array((None,) + DIRT_KINDS, dtype=object)[plan.kind]
    cols[LATE_COL] = plan.late_days > 0
    take = np.repeat(np.arange(len(epoch)), 1 + plan.dup.astype(np.int64))
    out = pd.DataFrame({name: col[take] for name, col in cols.items()})
    out[DUP_COL] = np.r_[False, take[1:] == take[:-1]] if len(take) else np.zeros(0, bool)
    return out
