"""Ingest on hand-built raw records whose fate is known: accepted, quarantined (why), duplicate."""

import datetime as dt
import gzip
import json

import pytest
from pyspark.sql import functions as F

from interest_lib import schema as S
from interest_lib.cli import main
from interest_lib.errors import EmptyInputError
from interest_lib.features.job import run_featurize
from interest_lib.ingest import run_ingest
from interest_lib.ingest.job import IngestAccountingError, NothingAcceptedError
from interest_lib.ingest.pseudonymise import MissingKeyError, pseudonymise_col, pseudonymise_py
from interest_lib.ingest.readers import RawInputError
from interest_lib.sessions import run_sessionize
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE, REF_ITEMS, SILVER_EVENTS_SESSIONIZED
from tests.helpers import read_with_delta_rs

pytestmark = [pytest.mark.spark]

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
    # No user id can be located in it, so each word is masked by its pseudonym (it could be an id).
    assert quarantine["malformed_record"].raw_record == " ".join(
        pseudonymise_py(w, KEY.encode()) for w in "this is not json".split())
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


@pytest.mark.card_env
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


HEADER = "event_id,user_id,item_id,category_id,category_path,event_type,event_time,text,price,source"


def test_csv_columns_are_bound_by_header_name_per_file(spark, tmp_conf, tables, tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "a.csv").write_text(HEADER + "\nx1,user-a,item-a,c1,a/b/c1,view,2026-01-05T10:00:00Z,,,web\n")
    # user_id and item_id swapped, other columns reordered, optional ones absent, one extra column
    (folder / "b.csv").write_text("event_time,item_id,user_id,extra,event_type,category_id,event_id\n"
                                  "2026-01-05T11:00:00Z,item-b,user-b,zzz,cart,c2,x2\n")
    report = ingest(spark, tmp_conf, tables, folder)
    assert (report.rows_in, report.accepted, report.quarantined) == (2, 2, 0)
    rows = {r.event_id: r for r in tables.read(BRONZE_EVENTS).collect()}
    assert rows["x2"].item_id == "item-b" and rows["x2"].event_type == "cart"
    assert rows["x2"].user_id == pseudonymise_py("user-b", KEY.encode())
    assert rows["x2"].category_path is None and rows["x1"].item_id == "item-a"
    assert not {"user-a", "user-b"} & {v for r in rows.values() for v in r.asDict().values()}


def test_column_mapping_and_header_that_does_not_fit(spark, tmp_conf, tables, tmp_path):
    folder = tmp_path / "mapped"
    folder.mkdir()
    (folder / "t.csv").write_text("basket,household,product,cat,kind,ts\n"
                                  "k1,h1,p1,dairy,purchase,2026-01-05T10:00:00Z\n")
    with pytest.raises(RawInputError) as exc:
        ingest(spark, tmp_conf, tables, folder)
    text = str(exc.value)
    assert "t.csv" in text and "event_id" in text and "user_id" in text and "'household'" in text
    assert "ingest.columns" in text and tables.exists(BRONZE_EVENTS) is False
    tmp_conf.ingest.columns = {"event_id": "basket", "user_id": "household", "item_id": "product",
                               "category_id": "cat", "event_type": "kind", "event_time": "ts"}
    report = ingest(spark, tmp_conf, tables, folder)
    assert report.accepted == 1
    row = tables.read(BRONZE_EVENTS).first()
    assert (row.event_id, row.item_id, row.category_id, row.event_type) == ("k1", "p1", "dairy", "purchase")
    assert row.user_id == pseudonymise_py("h1", KEY.encode())


def test_headerless_csv_is_refused_or_read_by_position_without_losing_a_row(spark, tmp_conf, tables, tmp_path):
    folder = tmp_path / "nohead"
    folder.mkdir()
    lines = [f"n{i},u{i},i{i},c1,a/b/c1,view,2026-01-05T10:0{i}:00Z,,,web" for i in range(3)]
    (folder / "a.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(RawInputError, match="csv_header: false"):
        ingest(spark, tmp_conf, tables, folder)
    tmp_conf.ingest.csv_header = False
    report = ingest(spark, tmp_conf, tables, folder)
    assert (report.rows_in, report.accepted) == (3, 3)
    assert sorted(r.event_id for r in tables.read(BRONZE_EVENTS).collect()) == ["n0", "n1", "n2"]


def test_compressed_inputs_are_detected(spark, tmp_conf, tables, tmp_path):
    folder = tmp_path / "gz"
    folder.mkdir()
    with gzip.open(folder / "a.csv.gz", "wt") as fh:
        fh.write(HEADER + "\nz1,u1,i1,c1,a/b/c1,view,2026-01-05T10:00:00Z,,,web\n")
    assert ingest(spark, tmp_conf, tables, folder).accepted == 1
    jfolder = tmp_path / "jgz"
    jfolder.mkdir()
    with gzip.open(jfolder / "a.jsonl.gz", "wt") as fh:
        fh.write("\n".join([ev("z2"), ev("z3")]) + "\n")
    assert ingest(spark, tmp_conf, tables, jfolder).accepted == 2
    # A URI is listed and its CSV header read through Hadoop's FileSystem (as on a cluster).
    tmp_conf.ingest.columns = {}
    with gzip.open(folder / "b.csv.gz", "wt") as fh:
        fh.write("event_time,user_id,item_id,category_id,event_type,event_id\n"
                 "2026-01-05T12:00:00Z,u9,i9,c1,view,z4\n")
    report = ingest(spark, tmp_conf, tables, f"file://{folder}")
    assert (report.accepted, report.duplicates_removed) == (1, 1)
    assert tables.read(BRONZE_EVENTS).filter("event_id = 'z4'").first().item_id == "i9"


def test_every_json_line_is_one_counted_record(spark, tmp_conf, tables, tmp_path):
    odd = [ev("j2") + " " + ev("j3"), "[]", "[" + ev("j4") + "," + ev("j5") + "]", '"text"', ev("j6") + "x"]
    write_raw(tmp_path / "j", "a.jsonl", [ev("j1")] + odd + ["", "   "])
    report = ingest(spark, tmp_conf, tables, tmp_path / "j")
    assert (report.rows_in, report.accepted, report.quarantined) == (6, 1, 5)
    assert report.reasons == {"malformed_record": 5}
    raw = sorted(r.raw_record for r in tables.read(BRONZE_QUARANTINE).collect())
    # Lines with a "user_id" member keep their text with the id pseudonymised; a line without one
    # keeps only raw field names (here "text") and masks every other word (it could be a raw id).
    u1 = '"%s"' % pseudonymise_py("u1", KEY.encode())
    assert raw == sorted(o.replace('"u1"', u1) for o in odd)


def test_hidden_data_files_are_refused_not_skipped(spark, tmp_conf, tables, tmp_path):
    write_raw(tmp_path / "h", "a.json", [ev("h1")])
    write_raw(tmp_path / "h", "_b.json", [ev("h2"), ev("h3"), ev("h4")])
    with pytest.raises(RawInputError, match=r"_b\.json.*rename"):
        ingest(spark, tmp_conf, tables, tmp_path / "h")


def test_rerun_after_changing_a_setting_is_a_new_batch(spark, tmp_conf, tables, tmp_path):
    write_raw(tmp_path / "r", "a.json", [ev("r1", ts="2026-01-05T10:00:00Z"), ev("r2", ts="2001-06-01T10:00:00Z")])
    tmp_conf.ingest.min_event_date = "2020-01-01"
    first = ingest(spark, tmp_conf, tables, tmp_path / "r")
    assert (first.accepted, first.reasons) == (1, {"event_time_too_old": 1})
    assert ingest(spark, tmp_conf, tables, tmp_path / "r").skipped  # same files and settings
    tmp_conf.ingest.min_event_date = "2001-01-01"
    second = ingest(spark, tmp_conf, tables, tmp_path / "r")
    assert not second.skipped and second.run_id != first.run_id
    assert (second.rows_in, second.accepted, second.quarantined, second.duplicates_removed) == (2, 1, 0, 1)
    assert sorted(r.event_id for r in tables.read(BRONZE_EVENTS).collect()) == ["r1", "r2"]


def test_nothing_valid_stops_with_the_top_reasons(spark, tmp_conf, tables, tmp_path):
    write_raw(tmp_path / "bad", "a.json", [ev("q1", user=""), ev("q2", user=""), ev("q3", etype="hover")])
    with pytest.raises(NothingAcceptedError) as exc:
        ingest(spark, tmp_conf, tables, tmp_path / "bad")
    assert "none of the 3 records" in str(exc.value)
    assert str(exc.value).index("missing_user_id 2") < str(exc.value).index("unknown_event_type 1")
    assert tables.read(BRONZE_QUARANTINE).count() == 3 and not tables.exists(BRONZE_EVENTS)
    write_raw(tmp_path / "empty", "a.json", ["", ""])
    with pytest.raises(NothingAcceptedError, match="hold no records"):
        ingest(spark, tmp_conf, tables, tmp_path / "empty")


def test_cli_exits_non_zero_with_the_message(spark, tmp_path, capsys):
    write_raw(tmp_path / "raw" / "events", "a.json", [ev("q1", user="")])
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "--set", f"storage.warehouse={tmp_path / 'wh'}", "--set", f"storage.raw_dir={tmp_path / 'raw'}",
              "--set", f"ingest.pseudonym_key={KEY}", "--set", "spark.master=local[2]",
              "--set", "storage.engine=delta-rs"])
    assert exc.value.code == 3
    assert "missing_user_id 1" in capsys.readouterr().err


def test_a_row_lost_in_the_write_breaks_the_accounting(spark, tmp_conf, tables, tmp_path, monkeypatch):
    write_raw(tmp_path / "l", "a.json", GOOD)
    real_write = tables.write

    def lossy_write(df, name, *args, **kwargs):  # a faulty engine that drops one row of the events
        return real_write(df.filter("event_id != 'e2'") if name == BRONZE_EVENTS else df, name, *args, **kwargs)

    monkeypatch.setattr(tables, "write", lossy_write)
    with pytest.raises(IngestAccountingError, match="duplicates removed 0"):
        ingest(spark, tmp_conf, tables, tmp_path / "l")


def test_empty_input_tables_stop_sessionize_and_featurize(spark, tmp_conf, tables):
    tables.write(spark.createDataFrame([], S.EVENT_SCHEMA), BRONZE_EVENTS)
    with pytest.raises(EmptyInputError, match="bronze.events holds no events"):
        run_sessionize(spark, tmp_conf, tables)
    tables.write(spark.createDataFrame([], S.SESSIONIZED_EVENT_SCHEMA), SILVER_EVENTS_SESSIONIZED)
    with pytest.raises(EmptyInputError, match="silver.events_sessionized holds no events"):
        run_featurize(spark, tmp_conf, tables, embed=False)


def test_blank_or_invisible_user_ids_and_infinite_prices_are_quarantined(spark, tmp_conf, tables, tmp_path):
    blank_users = ["\t", "\u200b", "\ufeff", " \u00a0 ", "\u200b\u200d\n"]
    lines = [ev(f"w{i}", user=u) for i, u in enumerate(blank_users)]
    lines += [ev("p1", price="1e400"), ev("p2", price="-1e400"),
              ev("p3").replace('"source"', '"price": 1e400, "source"'),  # a JSON number, not a string
              ev("p4", price="NaN")]
    write_raw(tmp_path / "z", "a.json", GOOD + lines)
    report = ingest(spark, tmp_conf, tables, tmp_path / "z")
    assert report.accepted == len(GOOD)
    assert report.reasons == {"blank_user_id": len(blank_users), "non_finite_price": 4}
    assert tables.read(BRONZE_EVENTS).filter(~F.isnan("price") & (F.abs("price") == float("inf"))).count() == 0


@pytest.mark.card_env
def test_parquet_with_nanosecond_timestamps_and_types_drifting_between_files(spark, tmp_conf, tables, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "pq"
    folder.mkdir()
    base = {"event_id": ["n1", "n2"], "user_id": ["u1", "u2"], "item_id": ["i1", "i2"],
            "category_id": ["c1", "c2"], "event_type": ["view", "cart"]}
    ns = pa.array([1767607200123456789, 1767610800000000000], pa.timestamp("ns", tz="UTC"))
    # pandas' default: nanosecond timestamps; price a double here ...
    pq.write_table(pa.table({**base, "event_time": ns, "price": pa.array([None, 9.5])}), folder / "a.parquet")
    # ... and strings (event time) and a long (price) in the next file.
    pq.write_table(pa.table({**{k: [v[0].replace("1", "3")] for k, v in base.items()},
                             "event_time": ["2026-01-05T10:00:00Z"], "price": pa.array([7], pa.int64())}),
                   folder / "b.parquet")
    report = ingest(spark, tmp_conf, tables, folder)
    assert (report.accepted, report.quarantined) == (3, 0)
    got = {r.event_id: (r.event_time, r.price) for r in tables.read(BRONZE_EVENTS).collect()}
    assert got == {"n1": (dt.datetime(2026, 1, 5, 10, 0, 0, 123456), None),
                   "n2": (dt.datetime(2026, 1, 5, 11, 0), 9.5),
                   "n3": (dt.datetime(2026, 1, 5, 10, 0), 7.0)}


def test_unreadable_parquet_file_is_an_error_naming_it(spark, tmp_conf, tables, tmp_path):
    folder = tmp_path / "pqbad"
    folder.mkdir()
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(RawInputError, match=r"broken\.parquet: cannot read the Parquet schema"):
        ingest(spark, tmp_conf, tables, folder)


@pytest.mark.parametrize("rows_per_file, files", [(1_000_000, 1 + 1), (3, 3 + 1)])
def test_quarantine_is_written_in_files_by_its_rows_not_by_the_inputs_splits(
        spark, tmp_conf, tables, tmp_path, rows_per_file, files):
    # 7 event files (7 splits at least), each with a good and a bad row: 7 rows to quarantine;
    # 3 catalogue files, each with a good and a nameless item: 3 more.
    for k in range(7):
        write_raw(tmp_path / "raw" / "events", f"part-{k}.json", [ev(f"g{k}"), ev(f"b{k}", etype="hover")])
    for k in range(3):
        write_raw(tmp_path / "raw" / "items", f"items-{k}.json", [
            json.dumps({"item_id": f"i{k}", "title": "t", "category_id": "c1", "category_path": "a/b/c1"}),
            json.dumps({"item_id": "", "title": f"nameless {k}", "category_id": "c1", "category_path": "a/b/c1"})])
    tmp_conf.ingest.quarantine_rows_per_file = rows_per_file
    report = ingest(spark, tmp_conf, tables)
    assert (report.accepted, report.quarantined, report.items_quarantined) == (7, 7, 3)
    written = tables.live_files(BRONZE_QUARANTINE)
    # ceil(7 / rows_per_file) event files + ceil(3 / rows_per_file) item files, not one per split
    assert len(written) == files, written
    rows = tables.read(BRONZE_QUARANTINE).collect()
    assert sorted(json.loads(r.raw_record)["event_id"] for r in rows if r.record_type == "event") == \
        [f"b{k}" for k in range(7)]
    assert sorted(json.loads(r.raw_record)["title"] for r in rows if r.record_type == "item") == \
        [f"nameless {k}" for k in range(3)]
