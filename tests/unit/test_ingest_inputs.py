"""Ingest's input listing, format detection and run id, without Spark (local paths only)."""

import gzip
import json

import pytest

from interest_lib.conf import IngestConf
from interest_lib.ingest.job import default_run_id, output_settings
from interest_lib.ingest.readers import RawInputError, file_kind, scan_input

pytestmark = pytest.mark.unit


def test_file_kind_sees_through_compression():
    assert [file_kind(n) for n in ("a.csv", "a.CSV.GZ", "b.jsonl.gz", "c.json.bz2", "d.parquet",
                                   "e.ndjson", "README.md", "part.gz")] == [
        "csv", "csv", "jsonl", "jsonl", "parquet", "jsonl", None, None]


def test_scan_detects_compressed_csv_and_skips_metadata(tmp_path):
    (tmp_path / "day=1").mkdir()
    with gzip.open(tmp_path / "day=1" / "a.csv.gz", "wt") as fh:
        fh.write("event_id\n1\n")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".a.csv.gz.crc").write_text("x")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "part-0.csv").write_text("x")
    raw = scan_input(None, str(tmp_path))
    assert raw.format == "csv" and [f.path for f in raw.files] == [str(tmp_path / "day=1" / "a.csv.gz")]


def test_hidden_data_files_and_unknown_extensions_are_refused(tmp_path):
    (tmp_path / "a.json").write_text("{}\n")
    (tmp_path / "_b.json").write_text("{}\n")
    with pytest.raises(RawInputError, match=r"start with '_' or '.'.*_b\.json"):
        scan_input(None, str(tmp_path))
    (tmp_path / "_b.json").unlink()
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(RawInputError, match=r"notes\.txt.*ingest.format"):
        scan_input(None, str(tmp_path))
    assert len(scan_input(None, str(tmp_path), fmt="jsonl").files) == 2  # a stated format reads all
    with pytest.raises(RawInputError, match="no input files"):
        scan_input(None, str(tmp_path / "nowhere"))
    assert scan_input(None, str(tmp_path / "nowhere"), missing_ok=True) is None


def test_run_id_changes_with_files_and_output_settings_only(tmp_path):
    (tmp_path / "a.json").write_text("{}\n")
    raw = scan_input(None, str(tmp_path))
    conf = IngestConf()
    base = default_run_id([raw, None], output_settings(conf, b"k"))
    assert base == default_run_id([raw, None], output_settings(IngestConf(), b"k"))
    changed = [IngestConf(min_event_date="2001-01-01"), IngestConf(columns={"user_id": "u"}),
               IngestConf(csv_header=False), IngestConf(max_future_skew_minutes=5)]
    ids = {default_run_id([raw, None], output_settings(c, b"k")) for c in changed}
    assert base not in ids and len(ids) == len(changed)
    assert default_run_id([raw, None], output_settings(conf, b"other key")) != base
    assert "secret" not in json.dumps(output_settings(conf, b"secret-key"))  # a fingerprint only
    assert default_run_id([raw, None], output_settings(IngestConf(pseudonym_key_env="X"), b"k")) == base
    (tmp_path / "b.json").write_text("{}\n")
    assert default_run_id([scan_input(None, str(tmp_path)), None], output_settings(conf, b"k")) != base
