"""Fuzzing ingest with hypothesis: generated JSON-lines and CSV inputs mixing valid records,
broken lines, odd unicode, raw non-UTF-8 bytes, swapped and missing columns, duplicates and
extreme numbers and dates, each ingested by the real job on local Spark + delta-rs.

Every example checks, against counts the test computes itself from what it wrote:

- the accounting identity rows_in = accepted + quarantined + duplicates removed, with rows_in
  equal to the non-blank lines (JSON) or data rows (CSV) written, and the stored tables holding
  exactly the accepted and quarantined counts, with no event id twice in bronze.events;
- no planted raw user id (each starts with ``ZqRaw`` and a number that nothing else holds) in any
  file of the warehouse (every cell of every Parquet file, every other file's bytes: the Delta
  logs and their statistics, locks) nor in the run's log records or error messages.

Examples are few (each is a Spark job) and derandomized, so CI runs the same inputs every time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import shutil
import tempfile

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from interest_lib import schema as S
from interest_lib.conf import load_config
from interest_lib.ingest import run_ingest
from interest_lib.ingest.pseudonymise import pseudonymise_py
from interest_lib.logs import LOGGER_NAME
from interest_lib.storage import Tables
from interest_lib.storage.catalog import BRONZE_EVENTS, BRONZE_QUARANTINE
from tests.helpers import read_as_bi

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 2, 1, 0, 0)
KEY = "fuzz-test-key"
CORE = "ZqRaw"  # planted raw user ids: CORE + 3 digits (+ odd characters); no other value holds CORE
FIELDS = list(S.RAW_FIELDS)
OPTIONAL = [f for f in FIELDS if f not in S.REQUIRED_RAW_FIELDS]
EXAMPLES = 8  # per format; each example is one ingest (~5-8 s on 2 cores)

ODD = ["", "", "\u200b", "\u200d", "\ufeff", "\u202e", "\u00e9", "e\u0301", "\U0001f600", "\u4e2d", "\u2028"]
GOOD_TIMES = ["2026-01-05T10:00:00Z", "2026-01-31T23:59:59.999999999Z", "2026-01-10 08:30",
              "2026-01-12T10:00:00+14:00", "1767607200000", " 2026-01-20T00:00:00-05:30 "]
BAD_TIMES = ["yesterday", "", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
             "9999999999999", "0000000000000", "+10000-01-01T00:00:00Z", "2026-06-30T23:59:60Z", "1e12"]
PRICES = ["", "9.99", "0", " 3.5 ", "1e308", "1e400", "-1e-320", "-5", "abc", "NaN", "Infinity",
          "99999999999999999999999", "0x10", ".5", "5."]
TYPES = list(S.EVENT_TYPES) * 2 + ["hover", "", " VIEW ", "Purchase", "view\u200b"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


@st.composite
def records(draw, n: int) -> list[dict]:
    """``n`` raw events as field -> string, each with a planted raw user id (or a blank one)."""
    out = []
    for i in range(n):
        odd = draw(st.sampled_from(ODD))
        uid = f"{CORE}{i:03d}" + odd + draw(st.sampled_from(["", "x", "-\u00df"]))
        uid = draw(st.sampled_from([uid, uid, uid, f"  {uid} ", "", "   "]))
        out.append({
            S.EVENT_ID: draw(st.sampled_from([f"ev{draw(st.integers(0, 2 * n))}", "", " ev1 ", "ev\u200b1"])),
            S.USER_ID: uid,
            S.ITEM_ID: draw(st.sampled_from(["i1", "i2", "", "i\u200b3", "\u00edtem"])),
            S.CATEGORY_ID: draw(st.sampled_from(["c1", "c2", "", "c\U0001f600"])),
            S.CATEGORY_PATH: draw(st.sampled_from(["a/b/c1", "", "a/\u00e9/c2"])),
            S.EVENT_TYPE: draw(st.sampled_from(TYPES)),
            S.EVENT_TIME: draw(st.sampled_from(GOOD_TIMES * 2 + BAD_TIMES)),
            S.TEXT: draw(TEXT),
            S.PRICE: draw(st.sampled_from(PRICES)),
            S.SOURCE: draw(st.sampled_from(["web", "app", "", "\u202eweb"])),
        })
    return out


def sure_valid(i: int) -> dict:
    """A record every check accepts (so that every run has something to write)."""
    return {S.EVENT_ID: f"sure{i}", S.USER_ID: f"{CORE}{900 + i:03d}", S.ITEM_ID: "i1",
            S.CATEGORY_ID: "c1", S.CATEGORY_PATH: "a/b/c1", S.EVENT_TYPE: "view",
            S.EVENT_TIME: "2026-01-05T10:00:00Z", S.TEXT: "", S.PRICE: "1", S.SOURCE: "web"}


def with_bad_byte(line: bytes, uid: str, draw) -> bytes:
    """``line`` with a byte sequence that is not UTF-8 inside the user id, or at a drawn place."""
    bad = draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3(", b"\xed\xa0\x80", b"\x80\x80"]))
    raw = uid.encode("utf-8")
    if raw and raw in line and draw(st.booleans()):
        return line.replace(raw, raw + bad, 1)
    at = draw(st.integers(0, len(line)))
    return line[:at] + bad + line[at:]


JSON_KINDS = ["ok"] * 6 + ["truncate", "array", "two_objects", "scalar", "bad_bytes", "drop_fields",
                           "duplicate", "blank", "upper_key", "number_id", "ascii_escaped"]
CSV_KINDS = ["ok"] * 6 + ["too_few", "too_many", "bad_bytes", "duplicate", "quoted"]


@st.composite
def jsonl_files(draw):
    """(files as name -> bytes, the non-blank lines written, the raw ids written)."""
    recs = draw(records(draw(st.integers(6, 18)))) + [sure_valid(0)]
    files: dict[str, list[bytes]] = {"a.json": [], "b.jsonl": []}
    written: list[bytes] = []
    uids = []
    for r in recs:
        kind = draw(st.sampled_from(JSON_KINDS)) if r[S.EVENT_ID] != "sure0" else "ok"
        uids.append(r[S.USER_ID])
        r = dict(r)
        if kind == "drop_fields":
            for f in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
                r.pop(f, None)
        if kind == "number_id":
            r[S.USER_ID] = 999  # a bare number as the id: read as its text
            uids.append("999")
        line = json.dumps(r, ensure_ascii=(kind == "ascii_escaped"))
        if kind == "upper_key":
            line = line.replace('"user_id"', '"USER_ID"')
        data = line.encode("utf-8")
        if kind == "truncate":
            data = data[:draw(st.integers(1, len(data) - 1))]
        elif kind == "array":
            data = b"[" + data + b"]"
        elif kind == "two_objects":
            data = data + b" " + json.dumps(sure_valid(1)).encode()
            uids.append(sure_valid(1)[S.USER_ID])
        elif kind == "scalar":
            data = json.dumps(r[S.USER_ID] if S.USER_ID in r else "x").encode()
        elif kind == "bad_bytes":
            data = with_bad_byte(data, str(r.get(S.USER_ID, "")), draw)
        elif kind == "duplicate" and written:
            data = draw(st.sampled_from(written))
        elif kind == "blank":
            files[draw(st.sampled_from(sorted(files)))].append(draw(st.sampled_from([b"", b"   "])))
        files[draw(st.sampled_from(sorted(files)))].append(data)
        written.append(data)
    return {name: b"".join(l + b"\n" for l in lines) for name, lines in files.items() if lines}, len(written), uids


@st.composite
def csv_files(draw):
    """(files as name -> bytes, the data rows written, the raw ids written). Each file has its
    own header: the raw fields in a drawn order (swapped columns), optional ones maybe left out,
    maybe an extra column."""
    recs = draw(records(draw(st.integers(6, 18)))) + [sure_valid(0)]
    names = ["a.csv", "b.csv"]
    headers = {}
    for name in names:
        cols = draw(st.permutations(FIELDS))
        dropped = set(draw(st.lists(st.sampled_from(OPTIONAL), max_size=3)))
        cols = [c for c in cols if c not in dropped]
        if draw(st.booleans()):
            cols.insert(draw(st.integers(0, len(cols))), "note")
        headers[name] = cols
    rows: dict[str, list[bytes]] = {n: [] for n in names}
    written: dict[str, list[bytes]] = {n: [] for n in names}
    uids = []
    for r in recs:
        kind = draw(st.sampled_from(CSV_KINDS)) if r[S.EVENT_ID] != "sure0" else "ok"
        name = draw(st.sampled_from(names)) if r[S.EVENT_ID] != "sure0" else "a.csv"
        uids.append(r[S.USER_ID])
        cells = [r.get(c, "n\u00f6te,\"q\"") for c in headers[name]]
        if kind == "too_few":
            cells = cells[:draw(st.integers(1, len(cells) - 1))]
        elif kind == "too_many":
            cells = cells + ["extra"] * draw(st.integers(1, 3))
        buf = io.StringIO()
        # (the writer quotes a field holding a line break only when it knows the line terminator)
        csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL if kind == "quoted" else csv.QUOTE_MINIMAL
                   ).writerow(cells)
        data = buf.getvalue()[:-1].encode("utf-8")
        if data.strip() == b"":
            data = b'""' + b"," * (len(cells) - 1)  # a row of empty cells, not a blank line
        if kind == "bad_bytes":
            data = with_bad_byte(data, r[S.USER_ID], draw)
        elif kind == "duplicate" and written[name]:
            data = draw(st.sampled_from(written[name]))
        rows[name].append(data)
        written[name].append(data)
    files = {}
    for name in names:
        if rows[name]:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(headers[name])
            files[name] = b"\n".join([buf.getvalue().encode()] + rows[name]) + b"\n"
    return files, sum(len(rows[n]) for n in names), uids


class Captured(logging.Handler):
    """Every record the project's loggers emit during a run, formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record):
        self.texts.append(self.format(record))


def warehouse_leaks(root: str, planted: list[str]) -> dict:
    """file -> the planted raw id cores found in it: every cell of each Parquet file, and the bytes
    (raw and as JSON escapes) of every other file (Delta logs with their statistics, locks)."""
    cores = sorted({u.strip()[:len(CORE) + 3] for u in planted if u.strip().startswith(CORE)})
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".parquet"):
                text = "\n".join(str(v) for col in pq.read_table(path).columns for v in col.to_pylist())
                data = text.encode("utf-8", "surrogatepass")
            else:
                data = open(path, "rb").read()
            hits = [c for c in cores if c.encode() in data]
            if hits:
                found[os.path.relpath(path, root)] = hits
    return found


def ingest_and_check(spark, files: dict, rows_written: int, uids: list[str], fmt: str):
    """Ingest ``files`` into a fresh warehouse and check the accounting and the absence of raw ids."""
    root = tempfile.mkdtemp(prefix=f"fuzz-{fmt}-")
    try:
        raw = os.path.join(root, "raw", "events")
        os.makedirs(raw)
        for name, data in files.items():
            with open(os.path.join(raw, name), "wb") as fh:
                fh.write(data)
        conf = load_config(overrides=[f"storage.warehouse={root}/warehouse", f"storage.raw_dir={root}/raw",
                                      "spark.master=local[2]", "spark.shuffle_partitions=4",
                                      f"ingest.pseudonym_key={KEY}", "run.run_id=fuzz",
                                      "storage.engine=delta-rs"])
        tables = Tables(spark, conf.storage)
        captured = Captured()
        logger = logging.getLogger(LOGGER_NAME)
        level = logger.level
        logger.addHandler(captured)
        logger.setLevel(logging.DEBUG)
        try:
            report = run_ingest(spark, conf, tables, input_path=raw, now=NOW)
        except Exception as exc:  # noqa: BLE001 -- its message is searched too, then it fails the example
            captured.texts.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            logger.removeHandler(captured)
            logger.setLevel(level)

        # Accounting: the job's counts against the rows written, and against the stored tables.
        assert report.rows_in == rows_written, (report, rows_written)
        assert report.rows_in == report.accepted + report.quarantined + report.duplicates_removed, report
        assert report.quarantined == sum(report.reasons.values())
        events = read_as_bi(tables.path(BRONZE_EVENTS))
        quarantine = read_as_bi(tables.path(BRONZE_QUARANTINE)) if report.quarantined else None
        assert len(events) == report.accepted >= 1
        assert events.event_id.is_unique
        if quarantine is not None:
            assert len(quarantine) == report.quarantined
            assert quarantine.reason.value_counts().to_dict() == report.reasons
        # Accepted rows carry pseudonyms of ids that were written (trimmed as ingest trims).
        pseudonyms = {pseudonymise_py(u.strip(" "), KEY.encode()) for u in uids if isinstance(u, str)}
        assert set(events.user_id) <= pseudonyms

        # No planted raw id anywhere at rest or in the logs.
        leaks = warehouse_leaks(conf.storage.warehouse, uids)
        assert not leaks, f"raw user ids stored: {leaks}"
        logged = "\n".join(captured.texts)
        assert captured.texts and "rows in" in logged  # the capture did see the run
        assert not [c for c in {u.strip()[:len(CORE) + 3] for u in uids if u.strip()} if c in logged], logged
    finally:
        shutil.rmtree(root, ignore_errors=True)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: each try is a Spark job
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(case=jsonl_files())
def test_fuzzed_json_lines_keep_the_accounting_and_no_raw_id(spark, case):
    files, rows_written, uids = case
    ingest_and_check(spark, files, rows_written, uids, "jsonl")


@FUZZ
@given(case=csv_files())
def test_fuzzed_csv_keeps_the_accounting_and_no_raw_id(spark, case):
    files, rows_written, uids = case
    ingest_and_check(spark, files, rows_written, uids, "csv")
