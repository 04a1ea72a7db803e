"""Complete Journey -> raw store, on hand-made transactions whose store is known."""

import pandas as pd
import pytest

from interest_lib import schema as S
from interest_lib.datasets.complete_journey import build_raw_store

pytestmark = pytest.mark.unit


def _data():
    products = pd.DataFrame({
        "product_id": [1, 2, 3, 4],
        "department": ["GROCERY", "DRUG GM", "GROCERY", "PASTRY"],
        "brand": ["National", "Private", "National", None],
        "product_category": ["CANDY/GUM", "CANDY/GUM", "CANDY/GUM", None],
        "product_type": ["MINTS", "GUM", "MINTS", None],
        "package_size": ["1 OZ", None, None, None],
    })
    tx = pd.DataFrame({
        "household_id": [7, 7, 7, 8, 8],
        "basket_id": [100, 100, 100, 200, 200],
        "product_id": [1, 2, 3, 4, 99],  # 99 is not in the product table
        "quantity": [2, 1, 1, 0, 1],
        "sales_value": [3.0, 1.5, 0.5, 0.0, 2.0],
        "transaction_timestamp": pd.to_datetime(["2017-03-01 10:00:05"] * 3 + ["2017-03-02 08:00:00"] * 2),
    })
    return tx, products


def test_events_are_purchases_with_one_path_per_category_and_shared_basket_times():
    tx, products = _data()
    events, items = build_raw_store(tx, products)
    assert list(events.columns) == list(S.RAW_FIELDS) and len(events) == 5
    by_id = events.set_index(S.EVENT_ID)
    assert set(events[S.EVENT_TYPE]) == {"purchase"}
    # CANDY/GUM sits under GROCERY twice and DRUG GM once: every line of it gets the GROCERY path
    assert set(by_id.loc[["100-1", "100-2", "100-3"], S.CATEGORY_PATH]) == {"GROCERY/CANDY|GUM/MINTS"}
    assert by_id.loc["100-2", S.CATEGORY_ID] == "CANDY/GUM" and by_id.loc["100-2", S.ITEM_ID] == "2"
    assert set(by_id.loc[["100-1", "100-2", "100-3"], S.EVENT_TIME]) == {"2017-03-01T10:00:05Z"}
    # missing category and missing product: one UNKNOWN category
    assert set(by_id.loc[["200-4", "200-99"], S.CATEGORY_ID]) == {"UNKNOWN"}
    assert by_id.loc["100-1", S.PRICE] == "1.5" and by_id.loc["200-4", S.PRICE] == ""  # unit price
    assert by_id.loc["100-1", S.USER_ID] == "7"
    assert list(items.columns) == list(S.RAW_ITEM_FIELDS)
    assert sorted(items[S.ITEM_ID]) == ["1", "2", "3", "4", "99"]
    assert items.groupby(S.CATEGORY_ID)[S.CATEGORY_PATH].nunique().max() == 1
    assert items.set_index(S.ITEM_ID).loc["2", S.CATEGORY_PATH] == "GROCERY/CANDY|GUM/MINTS"


def test_a_category_under_two_departments_takes_its_majority_department():
    # SOAP: 3 lines under GROCERY (two types, 2 + 1) and 2 under DRUG GM (one type). The most
    # frequent single path is GROCERY/SOAP/BAR (2) tied with DRUG GM/SOAP/LIQUID (2); the majority
    # department is GROCERY (3 lines), and BAR its most frequent type there.
    from interest_lib.datasets.complete_journey import category_paths, purchase_lines

    products = pd.DataFrame({
        "product_id": [1, 2, 3, 4], "department": ["GROCERY", "GROCERY", "DRUG GM", "DRUG GM"],
        "product_category": ["SOAP", "SOAP", "SOAP", "TEA"], "product_type": ["BAR", "FOAM", "LIQUID", "GREEN"],
        "brand": None, "package_size": None})
    tx = pd.DataFrame({"household_id": 1, "basket_id": range(6), "product_id": [1, 1, 2, 3, 3, 4],
                       "quantity": 1, "sales_value": 1.0,
                       "transaction_timestamp": pd.Timestamp("2017-01-02")})
    paths = category_paths(purchase_lines(tx, products))
    assert paths.to_dict() == {"SOAP": "GROCERY/SOAP/BAR", "TEA": "DRUG GM/TEA/GREEN"}
    # a tie between departments goes to the alphabetically first one, whatever the row order
    tied = purchase_lines(tx[tx.basket_id.isin([0, 3])].iloc[::-1], products)  # 1 line each
    assert category_paths(tied)["SOAP"] == "DRUG GM/SOAP/LIQUID"
    events, _ = build_raw_store(tx, products)
    assert set(events.loc[events[S.CATEGORY_ID] == "SOAP", S.CATEGORY_PATH]) == {"GROCERY/SOAP/BAR"}


def test_purchase_lines_keep_the_order_and_refuse_duplicate_products():
    from interest_lib.datasets.complete_journey import purchase_lines

    tx, products = _data()
    lines = purchase_lines(tx.iloc[::-1], products)
    assert list(lines["product_id"]) == [99, 4, 3, 2, 1]
    assert list(lines["category_id"]) == ["UNKNOWN", "UNKNOWN", "CANDY/GUM", "CANDY/GUM", "CANDY/GUM"]
    with pytest.raises(ValueError, match="product_id is not unique"):
        purchase_lines(tx, pd.concat([products, products.iloc[:1]]))


def test_a_department_slice_keeps_whole_categories_and_only_the_chosen_households():
    from interest_lib.datasets.complete_journey import category_departments, department_slice

    tx, products = _data()
    # CANDY/GUM is a GROCERY category (2 of its 3 lines); product 2's line (DRUG GM) comes along.
    assert category_departments(tx, products).to_dict() == {"CANDY/GUM": "GROCERY", "UNKNOWN": "PASTRY"}
    sliced_tx, sliced_products = department_slice(tx, products, ["GROCERY"])
    assert sorted(sliced_tx["product_id"]) == [1, 2, 3]
    assert sorted(sliced_products["product_id"]) == [1, 2, 3]
    events, _ = build_raw_store(sliced_tx, sliced_products)
    assert set(events[S.CATEGORY_PATH]) == {"GROCERY/CANDY|GUM/MINTS"}  # the path it has on all data
    # UNKNOWN (missing category, and product 99 missing from the product table) is one category.
    unknown_tx, _ = department_slice(tx, products, ["PASTRY"], household_ids=[8])
    assert sorted(unknown_tx["product_id"]) == [4, 99]
    assert department_slice(tx, products, ["PASTRY"], household_ids=[7])[0].empty
    with pytest.raises(ValueError, match=r"no department \['MEAT'\]; departments: \['GROCERY', 'PASTRY'\]"):
        department_slice(tx, products, ["MEAT"])
