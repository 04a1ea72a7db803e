"""No raw user id at rest and no unreadable bytes: the quarantine on planted ids and bad bytes."""

import datetime as dt
import glob
import json
import os

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from interest_lib.ingest import run_ingest
from interest_lib.ingest.pseudonymise import pseudonymise_py
from interest_lib.ingest.quarantine import redact_json_ids
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE
from tests.helpers import read_as_bi, read_with_delta_rs

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 2, 1, 0, 0)
KEY = "privacy-test-key"
HEADER = "event_id,user_id,item_id,category_id,category_path,event_type,event_time,text,price,source"


def rec(eid, user, etype="view", ts="2026-01-05T10:00:00Z", **kw):
    r = {"event_id": eid, "user_id": user, "item_id": "i1", "category_id": "c1", "category_path": "a/b/c1",
         "event_type": etype, "event_time": ts, "source": "web"}
    r.update(kw)
    return r


def pseudonym(raw: str) -> str:
    return pseudonymise_py(raw, KEY.encode())


def ingest(spark, conf, tables, path, run_id):
    conf.ingest.pseudonym_key = KEY
    conf.run.run_id = run_id
    return run_ingest(spark, conf, tables, input_path=str(path), now=NOW)


def table_strings(folder: str) -> list[str]:
    """Every string a table stores: each cell of each data file, and every commit file's text."""
    out = [open(f, encoding="utf-8").read() for f in glob.glob(os.path.join(folder, "_delta_log", "*.json"))]
    for f in glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True):
        for column in pq.read_table(f).columns:
            out += [str(v) for v in column.to_pylist() if v is not None]
    return out


def test_quarantine_keeps_no_raw_user_id_from_json_csv_or_parquet(spark, tmp_conf, tables, tmp_path):
    json_dir, csv_dir, pq_dir = tmp_path / "json", tmp_path / "csv", tmp_path / "pq"
    json_dir.mkdir()
    csv_dir.mkdir()
    raw = {n: f"RAWUSER-{n}-Zq" for n in ("j1", "j2", "j3", "j4", "c1", "c2", "c3", "p1", "p2")}
    (json_dir / "a.json").write_text("\n".join([
        json.dumps(rec("j1", raw["j1"], etype="hover")),                       # parsed, bad type
        json.dumps(rec("j2", f"  {raw['j2']} ", ts="yesterday")),             # parsed, padded id
        json.dumps(rec("ok1", "ordinary-user")),                              # accepted
        '{"event_id": "j3", "user_id": "%s", "event_type": ' % raw["j3"],     # cut off: not JSON
        '{"event_id":"j4","USER_ID" : %s, "x": }' % json.dumps(raw["j4"]),  # other case, not JSON
        '{"event_id":"j7","user_id":null,',                                   # no id to hide
    ]) + "\n")
    (csv_dir / "a.csv").write_text("\n".join([
        HEADER,
        f"c1,{raw['c1']},i1,c1,a/b/c1,hover,2026-01-05T10:00:00Z,,,web",      # parsed, bad type
        f"c2,{raw['c2']},i1",                                                # too few fields
        f"c3,{raw['c3']},i1,c1,a/b/c1,view,2026-01-05T10:00:00Z,,,web,extra",  # too many fields
        "ok2,other-user,i1,c1,a/b/c1,view,2026-01-05T10:00:00Z,,,web",
    ]) + "\n")
    cols = HEADER.split(",")
    rows = [rec("p1", raw["p1"], ts="not-a-time"), rec("p2", raw["p2"], etype="hover"), rec("ok3", "third-user")]
    spark.createDataFrame([tuple(r.get(c) for c in cols) for r in rows],
                          ", ".join(f"{c} string" for c in cols)).write.parquet(str(pq_dir))

    reports = [ingest(spark, tmp_conf, tables, d, f"run-{i}") for i, d in enumerate((json_dir, csv_dir, pq_dir))]
    assert [(r.accepted, r.quarantined) for r in reports] == [(1, 5), (1, 3), (1, 2)]

    quarantine = read_as_bi(tables.path(BRONZE_QUARANTINE))
    assert len(quarantine) == 10
    for folder in (tables.path(BRONZE_QUARANTINE), tables.path(BRONZE_EVENTS)):
        stored = table_strings(folder)
        assert stored
        leaked = {r for r in raw.values() for s in stored if r in s}
        assert not leaked, f"raw user ids stored in {folder}: {sorted(leaked)}"

    # The records stay useful: parsed ones carry the same pseudonym as accepted rows would ...
    parsed = {json.loads(t)["event_id"]: json.loads(t) for t in quarantine.raw_record
              if t.startswith('{"event_id"') and t.endswith("}") and '"x": }' not in t}
    assert parsed["j1"]["user_id"] == pseudonym(raw["j1"]) and parsed["j1"]["event_type"] == "hover"
    assert parsed["j2"]["user_id"] == pseudonym(raw["j2"])  # trimmed first, as accepted rows are
    assert parsed["c1"]["user_id"] == pseudonym(raw["c1"]) and parsed["p2"]["user_id"] == pseudonym(raw["p2"])
    # ... and unparsed text keeps its shape with the id replaced in place.
    text = "\n".join(quarantine.raw_record)
    assert '"event_id": "j3", "user_id": "%s", "event_type": ' % pseudonym(raw["j3"]) in text
    assert '{"event_id":"j4","USER_ID" : "%s", "x": }' % pseudonym(raw["j4"]) in text
    assert '{"event_id":"j7","user_id":null,' in text
    assert f"c2,{pseudonym(raw['c2'])},i1" in text and f"c3,{pseudonym(raw['c3'])},i1," in text
    # Accepted rows use the same pseudonym (the quarantine joins to bronze by user).
    assert set(tables.read(BRONZE_EVENTS).toPandas().user_id) == {
        pseudonym(u) for u in ("ordinary-user", "other-user", "third-user")}


def test_a_non_utf8_byte_is_quarantined_with_its_reason_and_the_table_stays_readable(
        spark, tmp_conf, tables, tmp_path):
    json_dir, csv_dir = tmp_path / "json", tmp_path / "csv"
    json_dir.mkdir()
    csv_dir.mkdir()
    good = json.dumps(rec("ok1", "u1")).encode()
    bad_text = json.dumps(rec("b1", "u2", etype="review", text="caf_")).encode().replace(b"caf_", b"caf\xe9")
    bad_user = json.dumps(rec("b2", "u3_")).encode().replace(b"u3_", b"u3\xff")
    (json_dir / "a.json").write_bytes(b"\n".join([good, bad_text, bad_user]) + b"\n")
    (csv_dir / "a.csv").write_bytes(
        (HEADER + "\nc1,u4,i1,c1,a/b/c1,view,2026-01-05T10:00:00Z,,,web\n").encode()
        + b"c2,u5,i\xfe1,c1,a/b/c1,view,2026-01-05T10:00:00Z,,,web\n")

    first = ingest(spark, tmp_conf, tables, json_dir, "run-json")
    second = ingest(spark, tmp_conf, tables, csv_dir, "run-csv")
    assert (first.rows_in, first.accepted, first.quarantined, first.reasons) == (3, 1, 2, {"invalid_utf8": 2})
    assert (second.rows_in, second.accepted, second.quarantined, second.reasons) == (2, 1, 1, {"invalid_utf8": 1})

    # Readable by delta-rs -> pandas (a BI reader), with each bad byte shown as U+FFFD.
    quarantine = DeltaTable(tables.path(BRONZE_QUARANTINE)).to_pandas()
    assert sorted(quarantine.reason) == ["invalid_utf8"] * 3
    text = "\n".join(quarantine.raw_record)
    assert "caf\ufffd" in text and "i\ufffd1" in text
    assert "u2" not in text and "u3" not in text and "u5" not in text  # ids still pseudonymised
    # bronze.events is date-partitioned: read it as the suite does under either pyarrow
    assert sorted(read_with_delta_rs(tables.path(BRONZE_EVENTS)).column("event_id").to_pylist()) == ["c1", "ok1"]


def test_every_json_member_gets_its_own_pseudonym(spark):
    lines = ['{"user_id":"A1"} {"user_id": "B2", "x": 1} {"USER_ID" :"A1"', '"user_id":  77,', "no ids here",
             '"user_id":"C3\\"x"']
    df = spark.createDataFrame([(t,) for t in lines], "t string")
    got = [r.t for r in df.select(redact_json_ids(F.col("t"), KEY.encode()).alias("t")).collect()]
    p = pseudonym
    assert got == [
        f'{{"user_id":"{p("A1")}"}} {{"user_id": "{p("B2")}", "x": 1}} {{"USER_ID" :"{p("A1")}"',
        f'"user_id":  "{p("77")}",', "no ids here", f'"user_id":"{p("C3" + chr(92) + chr(34) + "x")}"',
    ]
