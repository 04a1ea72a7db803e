"""Ingest on hand-built raw records whose fate is known: accepted, quarantined (why), duplicate."""

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from interest_lib.ingest import run_ingest
from interest_lib.ingest.pseudonymise import MissingKeyError, pseudonymise_col, pseudonymise_py
from interest_lib.ingest.readers import RawInputError
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS
from tests.helpers import read_with_delta_rs

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 2, 1, 0, 0)
KEY = "test-key"


def ev(eid, user="u1", etype="view", ts="2026-01-05T10:00:00Z", item="i1", cat="c1", **kw):
    rec = {"event_id": eid, "user_id": user, "item_id": item, "category_id": cat,
           "category_path": "a/b/" + (cat or ""), "event_type": etype, "event_time": ts,
           "source": "web"}
    rec.update(kw)
    return json.dumps(rec)


GOOD = [
    ev("e1"),
    ev("e2", etype="cart", price=9.5),
    ev("e3", user="u2", etype="search", item=None, text="running shoes"),
    ev("e9", user="u2", ts="1767657000000"),  # epoch milliseconds
    ev("e10", etype="PURCHASE", price="19.99"),  # case-insensitive type, numeric string price
]
BAD = {
    "missing_user_id": ev("b1", user=""),
    "unknown_event_type": ev("b2", etype="hover"),
    "malformed_event_time": ev("b3", ts="yesterday"),
    "event_time_in_future": ev("b4", ts="2029-01-05T10:00:00Z"),
    "event_time_too_old": ev("b5", ts="1990-01-05T10:00:00Z"),
    "malformed_price": ev("b6", price="abc"),
    "negative_price": ev("b7", price=-3),
    "missing_item_id": ev("b8", item=""),
    "missing_category": ev("b9", cat=None),
    "missing_event_id": ev(""),
    "malformed_record": "this is not json",
}


def write_raw(folder, name, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


def ingest(spark, conf, tables, path=None, run_id=""):
    conf.ingest.pseudonym_key = KEY
    conf.run.run_id = run_id
    return run_ingest(spark, conf, tables, input_path=str(path) if path else None, now=NOW)


def test_known_records_are_accepted_quarantined_or_deduplicated(spark, tmp_conf, tables, tmp_path):
    raw = tmp_path / "raw" / "events"
    write_raw(raw / "arrival_date=2026-01-05", "a.json", GOOD + list(BAD.values()) + [GOOD[0], ""])
    write_raw(raw / "arrival_date=2026-01-06", "b.json", [GOOD[1]])  # a late duplicate
    report = ingest(spark, tmp_conf, tables)

    assert (report.rows_in, report.accepted, report.quarantined, report.duplicates_removed) == (
        len(GOOD) + len(BAD) + 2, len(GOOD), len(BAD), 2)
    assert report.reasons == {reason: 1 for reason in BAD}

    bronze = tables.read(BRONZE_EVENTS)
    assert sorted(r.event_id for r in bronze.collect()) == ["e1", "e10", "e2", "e3", "e9"]
    row = {r.event_id: r for r in bronze.collect()}
    assert row["e9"].event_time == dt.datetime(2026, 1, 5, 23, 50)
    assert row["e10"].event_type == "purchase" and row["e10"].price == pytest.approx(19.99)
    assert row["e3"].item_id is None and row["e3"].text == "running shoes"
    assert row["e1"].user_id == pseudonymise_py("u1", KEY.encode())
    assert "u1" not in {r.user_id for r in bronze.collect()}

    quarantine = {r.reason: r for r in tables.read(BRONZE_QUARANTINE).collect()}
    assert set(quarantine) == set(BAD)
    assert quarantine["malformed_record"].raw_record == "this is not json"
    assert json.loads(quarantine["unknown_event_type"].raw_record)["event_type"] == "hover"
    assert quarantine["malformed_price"].source_file.endswith("a.json")
    # BI readers without Spark see the same rows.
    assert read_with_delta_rs(tables.path(BRONZE_QUARANTINE)).num_rows == len(BAD)


def test_rerun_of_the_same_files_adds_nothing(spark, tmp_conf, tables, tmp_path):
    write_raw(tmp_path / "raw" / "events", "a.json", GOOD)
    first = ingest(spark, tmp_conf, tables)
    again = ingest(spark, tmp_conf, tables)
    assert not first.skipped and again.skipped
    assert tables.read(BRONZE_EVENTS).count() == len(GOOD)


def test_second_batch_drops_ids_already_in_bronze(spark, tmp_conf, tables, tmp_path):
    write_raw(tmp_path / "day1", "a.json", GOOD[:3])
    write_raw(tmp_path / "day2", "b.json", GOOD[2:] + [ev("e11", ts="2026-01-07T08:00:00Z")])
    one = ingest(spark, tmp_conf, tables, tmp_path / "day1")
    two = ingest(spark, tmp_conf, tables, tmp_path / "day2")
    assert (one.ingest_batch, two.ingest_batch) == (0, 1)
    assert (two.rows_in, two.accepted, two.duplicates_removed) == (4, 3, 1)
    batches = {r.event_id: r.ingest_batch for r in tables.read(BRONZE_EVENTS).collect()}
    assert batches["e3"] == 0 and batches["e11"] == 1 and len(batches) == 6


def test_csv_and_parquet_inputs(spark, tmp_conf, tables, tmp_path):
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "a.csv").write_text(
        "event_id,user_id,item_id,category_id,category_path,event_type,event_time,text,price,source\n"
        'c1,u1,i1,c1,a/b/c1,review,2026-01-05T10:00:00Z,"Great, comfy ""shoes""",,web\n'
        "c2,u1,i1,c1,a/b/c1,view,not-a-time,,,web\n"
    )
    report = ingest(spark, tmp_conf, tables, csv)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert tables.read(BRONZE_EVENTS).first().text == 'Great, comfy "shoes"'

    pq_dir = tmp_path / "pq"
    spark.createDataFrame(
        [("p1", "u3", "i1", "c1", "a/b/c1", "view", "2026-01-05T11:00:00Z", None, 4.5, "app")],
        "event_id string, user_id string, item_id string, category_id string, category_path string, "
        "event_type string, event_time string, text string, price double, source string",
    ).write.parquet(str(pq_dir))
    report = ingest(spark, tmp_conf, tables, pq_dir)
    assert report.accepted == 1
    assert tables.read(BRONZE_EVENTS).filter(F.col("event_id") == "p1").first().price == 4.5


def test_items_are_merged_and_bad_items_quarantined(spark, tmp_conf, tables, tmp_path):
    write_raw(tmp_path / "raw" / "events", "a.json", GOOD[:1])
    write_raw(tmp_path / "raw" / "items", "items.json", [
        json.dumps({"item_id": "i1", "title": "Trail shoe", "category_id": "c1",
                    "category_path": "a/b/c1", "price": "9.5"}),
        json.dumps({"item_id": "", "title": "nameless", "category_id": "c1", "category_path": "a/b/c1"}),
    ])
    report = ingest(spark, tmp_conf, tables)
    assert (report.items_accepted, report.items_quarantined) == (1, 1)
    assert tables.read(REF_ITEMS).first().title == "Trail shoe"
    q = tables.read(BRONZE_QUARANTINE).filter("record_type = 'item'").first()
    assert q.reason == "missing_item_id"


def test_missing_key_and_bad_input_are_clear_errors(spark, tmp_conf, tables, tmp_path, monkeypatch):
    write_raw(tmp_path / "raw" / "events", "a.json", GOOD[:1])
    tmp_conf.ingest.pseudonym_key = ""
    monkeypatch.delenv("INTEREST_PSEUDONYM_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="INTEREST_PSEUDONYM_KEY"):
        run_ingest(spark, tmp_conf, tables, now=NOW)
    monkeypatch.setenv("INTEREST_PSEUDONYM_KEY", "from-env")
    run_ingest(spark, tmp_conf, tables, now=NOW)
    assert tables.read(BRONZE_EVENTS).first().user_id == pseudonymise_py("u1", b"from-env")
    with pytest.raises(RawInputError, match="no input files"):
        ingest(spark, tmp_conf, tables, tmp_path / "nowhere")


def test_spark_hmac_matches_python_hmac(spark):
    key = b"k" * 70  # longer than a SHA-256 block: hashed first, as HMAC specifies
    ids = ["u1", "user-\u00e9", ""]
    df = spark.createDataFrame([(i,) for i in ids] + [(None,)], "id string")
    got = [r.p for r in df.select(pseudonymise_col("id", key).alias("p")).collect()]
    assert got == [pseudonymise_py(i, key) for i in ids] + [None]
