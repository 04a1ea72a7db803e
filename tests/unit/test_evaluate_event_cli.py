"""``interest evaluate --protocol event``: the event-level protocol with the learned ranker on a
warehouse's silver.events_sessionized, read from its Delta log without Spark.

The events are a planted replenishment log (tests/unit/test_event_ranker.py): every user buys a
staple daily and three categories in turn, one a day, so the category that is due can be told
only from the time since each was bought. The ranker learns it; every baseline ranks by counts.
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from interest_lib import schema as S
from interest_lib.cli import main
from interest_lib.evaluate.event_benchmark import run_event_protocol, warehouse_events
from interest_lib.evaluate.event_protocol import encode_events
from interest_lib.storage.catalog import SILVER_EVENTS_SESSIONIZED, table_path
from tests.unit.test_event_ranker import replenishment_log

pytestmark = pytest.mark.unit

RANKER = "epochs=10,batch=16,hidden=32,embedding=4,tifu_k=20,threads=1"


def _warehouse(tmp_path, events: pd.DataFrame) -> str:
    """A warehouse whose silver.events_sessionized holds ``events`` (user_id, category, ts)."""
    wh = str(tmp_path / "warehouse")
    write_deltalake(table_path(wh, SILVER_EVENTS_SESSIONIZED), pa.table({
        S.USER_ID: pa.array(events["user_id"].astype(str)),
        S.CATEGORY_ID: pa.array(events["category"].astype(str)),
        S.EVENT_TIME: pa.array(pd.to_datetime(events["ts"]).dt.tz_localize("UTC"), pa.timestamp("us", tz="UTC")),
        "session_id": pa.array(["s"] * len(events)),
    }))
    return wh


def _row(section: str, name: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.strip().startswith(name + " "))
    return line.split()


def test_event_protocol_prints_the_ranker_beating_the_best_baseline_with_its_ci(tmp_path, capsys):
    events = replenishment_log(n_users=40, n_days=30)
    wh = _warehouse(tmp_path, events)
    assert main(["evaluate", "--protocol", "event", "--boot", "50", "--ranker", RANKER,
                 "--set", f"storage.warehouse={wh}"]) == 0
    out = capsys.readouterr().out
    assert f"event-level protocol: {len(events):,} events, 40 users" in out
    section = out[out.index("[all]"):out.index("[switch]")]
    best = re.search(r"diff vs (\w+)", section).group(1)
    ranker, baseline = _row(section, "learned_ranker"), _row(section, best)
    # hr@1 hr@3 hr@10 ndcg@10 mrr, then the difference, its CI and the relative gain
    assert float(ranker[4]) > float(baseline[4]) + 0.05
    low = float(re.search(r"\[([+-][\d.]+),", " ".join(ranker)).group(1))
    assert low > 0  # the CI of the difference lies above zero
    # the same table as the protocol computed directly on the same events
    direct = run_event_protocol(encode_events(events), n_boot=50, log_line=lambda s: None, models={})
    t = direct.table
    value = t[(t.model == best) & (t.slice == "all") & (t.metric == "ndcg@10")].value.item()
    assert direct.best == best and f"{value:.4f}" == baseline[4]


def test_a_warehouse_without_events_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--protocol", "event", "--set", f"storage.warehouse={tmp_path / 'empty'}"])
    assert exit_.value.code == 3
    err = capsys.readouterr().err
    assert "silver.events_sessionized cannot be read" in err and "interest sessionize" in err


def test_an_unknown_model_or_ranker_setting_is_a_configuration_error(tmp_path, capsys):
    wh = _warehouse(tmp_path, replenishment_log(n_users=4, n_days=4))
    for args, named in ((["--models", "transformer"], "unknown protocol model(s) transformer"),
                        (["--ranker", "depth=3"], "unknown ranker setting 'depth'"),
                        (["--ranker", "epochs=many"], "ranker setting 'epochs' is 'many': expected a number (int)"),
                        (["--ranker", "cosine=yes"], "unknown ranker setting 'cosine'"),
                        (["--ranker", "hour_habit=yes"], "ranker setting 'hour_habit' is 'yes': expected 0 or 1")):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", "--protocol", "event", *args, "--set", f"storage.warehouse={wh}"])
        assert exit_.value.code == 2 and named in capsys.readouterr().err


def test_warehouse_events_are_the_tables_rows_in_naive_utc(tmp_path):
    events = replenishment_log(n_users=3, n_days=2)
    got = warehouse_events(_warehouse(tmp_path, events))
    assert len(got) == len(events) and got["ts"].dt.tz is None
    assert sorted(zip(got["user_id"], got["category"], got["ts"])) == sorted(
        zip(events["user_id"].astype(str), events["category"], pd.to_datetime(events["ts"])))
