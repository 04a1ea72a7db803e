"""The small pipeline run shared by the integration tests (built once per test session).

Its raw store comes from the session's cache of generated stores (tests/stores.py), so
``interest run`` skips generate (raw input present); the standalone-cluster test still runs a
``run`` that generates.
"""

import pytest

from interest_lib.cli import main
from interest_lib.conf import load_config
from interest_lib.storage import Tables


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, spark, generated_stores):
    """Run `interest run` once on a small store; return (settings, tables, conf)."""
    root = tmp_path_factory.mktemp("pipeline")
    settings = [f"storage.warehouse={root / 'warehouse'}", f"storage.raw_dir={root / 'raw'}",
                f"train.store={root / 'runs'}", f"report.dir={root / 'reports'}", "generate.users=150", "generate.days=42",
                "generate.mean_events_per_user=100", "generate.items_per_category=5", "train.epochs=3", "train.batch_size=64",
                "migration.min_group_size=2", "storage.engine=delta-rs"]  # a small store: smaller privacy cells so flows exist
    generated_stores.copy_to(settings, root)
    args = [x for s in settings for x in ("--set", s)]
    assert main(["run", *args]) == 0
    conf = load_config(overrides=settings)
    return settings, Tables(spark, conf.storage), conf
