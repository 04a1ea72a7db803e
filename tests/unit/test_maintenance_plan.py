"""Which tables ``interest optimize`` maintains and by which columns, from conf (no Spark)."""

import pytest

from interest_lib.conf import ConfigError, load_config
from interest_lib.storage.maintenance import maintenance_plan

pytestmark = pytest.mark.unit


def test_default_plan_zorders_the_user_keyed_silver_tables():
    plan = dict(maintenance_plan(load_config().storage))
    assert plan == {"bronze.events": [], "silver.events_sessionized": ["user_id"],
                    "silver.sessions": ["user_id"]}


def test_zorder_for_an_unknown_table_is_an_error_naming_it():
    conf = load_config(overrides=["storage.optimize_tables=silver.sessions"]).storage
    assert maintenance_plan(conf) == [("silver.sessions", ["user_id"])]  # other defaults unused
    conf.zorder_by["silver.sesions"] = "user_id"
    with pytest.raises(ConfigError, match=r"storage.zorder_by names \['silver.sesions'\], neither"):
        maintenance_plan(conf)
