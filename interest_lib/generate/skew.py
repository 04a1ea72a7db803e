"""Skew on demand: a bot user with a million events and a viral item with a fifth of all events.

Both are off by default (``generate.bot_events``, ``generate.viral_item_share``). They exist to
prove that every stage survives the data a real platform sees: one user id that is a crawler or
a replayed feed, and one item that goes viral. Deterministic like the rest of the generator: the
bot is generated in fixed chunks of :data:`BOT_CHUNK` events, chunk ``c`` seeded from
``[seed, BOT_SEED, c]``, whatever the number of partitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from interest_lib import schema as S
from interest_lib.generate.events import EventContext, format_events

#: Raw user id of the bot (``u`` + 7 characters, like a generated user's id).
BOT_USER = "ubot0001"
#: Events per bot chunk (one pandas frame in one task).
BOT_CHUNK = 100_000
BOT_SEED = 7_777_777
_VIEW, _CLICK = S.EVENT_TYPES.index("view"), S.EVENT_TYPES.index("click")


def viral_item(ctx: EventContext) -> tuple[int, int]:
    """(item index, leaf index) of the viral item: the top-ranked item of the most popular leaf."""
    leaf = int(np.argmax(ctx.cat.leaf_popularity))
    return int(ctx.cat.item_index(np.array([leaf]), np.array([0]))[0]), leaf


def make_viral(ctx: EventContext, sim: dict, share: float, rng: np.random.Generator) -> dict:
    """Re-point a ``share`` of ``sim``'s events (those with an item; the probability is scaled up
    so the share holds over all events) to the viral item, in place; returns ``sim``."""
    if share <= 0:
        return sim
    has_item = sim["item"] >= 0
    n_item = int(has_item.sum())
    if not n_item:
        return sim
    p = min(1.0, share * len(has_item) / n_item)
    hit = has_item & (rng.random(len(has_item)) < p)
    item, leaf = viral_item(ctx)
    sim["item"] = np.where(hit, item, sim["item"])
    sim["leaf"] = np.where(hit, leaf, sim["leaf"])
    return sim


def bot_chunks(bot_events: int) -> int:
    """Number of :data:`BOT_CHUNK` chunks the bot's events are generated in."""
    return -(-bot_events // BOT_CHUNK) if bot_events > 0 else 0


def bot_chunk(ctx: EventContext, seed: int, chunk: int, bot_events: int, viral_share: float) -> pd.DataFrame:
    """The bot's events of chunk ``chunk``: views (80%) and clicks on items drawn uniformly from
    the catalogue (a crawler), at uniform times over the period, from the web; no dirt, no
    duplicates, no late arrivals. Same columns as :func:`~interest_lib.generate.events.format_events`;
    event ids ``b`` + 9 digits, unique over all chunks."""
    lo = chunk * BOT_CHUNK
    n = max(0, min(BOT_CHUNK, bot_events - lo))
    rng = np.random.default_rng([seed, BOT_SEED, chunk])
    item = rng.integers(0, len(ctx.cat.item_ids), n)
    sim = {
        "t": np.sort(rng.integers(0, int(ctx.period_s), n)).astype(np.int64),
        "item": item,
        "leaf": item // ctx.cat.items_per_category,
        "etype": np.where(rng.random(n) < 0.8, _VIEW, _CLICK).astype(np.int8),
        "source": np.zeros(n, dtype=np.int64),
        "text": np.full(n, -1, dtype=np.int64),
    }
    make_viral(ctx, sim, viral_share, np.random.default_rng([seed, BOT_SEED, chunk, 1]))
    frame = format_events(ctx, np.array([0]), [sim])
    frame[S.USER_ID] = BOT_USER
    frame[S.EVENT_ID] = np.array([f"b{k:09d}" for k in range(lo, lo + n)], dtype=object)
    return frame
