"""Configuration: defaults documented in base.yml, overlays, overrides and clear errors."""

import dataclasses

import pytest
import yaml

from interest_lib.conf import CONF_DIR, Config, ConfigError, load_config

pytestmark = [pytest.mark.unit, pytest.mark.pure_python]  # not rerun in .venv-card (Makefile)


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def test_base_yml_lists_every_key_with_its_default_and_a_comment():
    base = yaml.safe_load((CONF_DIR / "base.yml").read_text())
    text_lines = (CONF_DIR / "base.yml").read_text().splitlines()
    for key, default in _leaves(Config()):
        *sections, name = key.split(".")
        node = base
        for section in sections:
            node = node[section]
        assert name in node, f"{key} missing from base.yml"
        assert node[name] == default, f"{key}: base.yml says {node[name]!r}, code {default!r}"
        # The key's line: the first one after its enclosing section headers, in order.
        at = 0
        for part in sections:
            at = next(i for i in range(at, len(text_lines)) if text_lines[i].strip().startswith(f"{part}:"))
        line = next(l for l in text_lines[at + 1:] if l.strip().startswith(f"{name}:"))
        assert "#" in line, f"{key} has no comment in base.yml"


def test_overlay_then_conf_file_then_set_take_precedence(tmp_path):
    extra = tmp_path / "extra.yml"
    extra.write_text("generate:\n  users: 7\n  seed: 3\n")
    conf = load_config(env="cluster", conf_file=str(extra), overrides=["generate.seed=9"])
    assert conf.spark.shuffle_partitions == 400  # from cluster.yml
    assert conf.generate.users == 7  # from the conf file
    assert conf.generate.seed == 9  # --set wins
    assert conf.sessionize.gap_minutes == 30  # base default


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("sessionize:\n  gap_minutess: 10\n")
    with pytest.raises(ConfigError, match=r"bad\.yml: unknown key 'sessionize\.gap_minutess'"):
        load_config(conf_file=str(bad))


def test_wrong_type_names_key_and_source(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("generate:\n  users: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yml: key 'generate\.users' expects int"):
        load_config(conf_file=str(bad))
    with pytest.raises(ConfigError, match="expects bool"):
        load_config(overrides=["spark.ui_enabled=maybe"])


def test_invalid_choices_and_ranges_are_errors():
    with pytest.raises(ConfigError, match="storage.engine"):
        load_config(overrides=["storage.engine=hive"])
    with pytest.raises(ConfigError, match="sessionize.gap_minutes"):
        load_config(overrides=["sessionize.gap_minutes=0"])
    with pytest.raises(ConfigError, match="unknown environment"):
        load_config(env="prod")


def test_secret_is_redacted_when_logged():
    conf = load_config(overrides=["ingest.pseudonym_key=s3cret"])
    assert conf.to_dict()["ingest"]["pseudonym_key"] == "***"
    assert conf.to_dict(redact=False)["ingest"]["pseudonym_key"] == "s3cret"


def test_missing_conf_files_are_an_error_not_silent_defaults(tmp_path):
    with pytest.raises(ConfigError, match="base.yml"):
        load_config(env="cluster", conf_dir=tmp_path)


def test_conf_is_read_from_inside_a_zip_like_a_wheel_on_py_files(tmp_path):
    import zipfile

    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in CONF_DIR.iterdir():
            if f.name.endswith(".yml"):
                z.writestr(f"interest_lib/_conf/{f.name}", f.read_text())
    conf = load_config(env="cluster", conf_dir=zipfile.Path(archive, "interest_lib/_conf/"))
    assert conf.spark.shuffle_partitions == 400


def test_set_reaches_dotted_spark_settings_in_extra():
    conf = load_config(overrides=["spark.extra.spark.executor.memory=1g", "features.event_weights.view=2"])
    assert conf.spark.extra["spark.executor.memory"] == "1g"
    assert conf.features.event_weights["view"] == 2


def test_date_settings_accept_dates_and_datetimes_and_refuse_other_text():
    conf = load_config(overrides=["ingest.min_event_date=2001-01-01", "score.as_of=2026-03-01T06:00:00",
                                  "generate.start_date=2026-02-02"])
    assert (conf.ingest.min_event_date, conf.score.as_of, conf.generate.start_date) == (
        "2001-01-01", "2026-03-01T06:00:00", "2026-02-02")
    assert load_config(overrides=["ingest.min_event_date=2001-01-01T06:00:00Z"]).ingest.min_event_date \
        .startswith("2001-01-01T06:00:00")
    with pytest.raises(ConfigError, match="ingest.min_event_date.*notadate"):
        load_config(overrides=["ingest.min_event_date=notadate"])
    with pytest.raises(ConfigError, match="generate.start_date"):
        load_config(overrides=["generate.start_date=2026-02-02T10:00:00"])


def test_column_mappings_are_checked():
    conf = load_config(overrides=["ingest.columns.user_id=household_key", "ingest.columns.event_time=ts",
                                  "ingest.item_columns.item_id=product_id"])
    assert conf.ingest.columns == {"user_id": "household_key", "event_time": "ts"}
    assert conf.ingest.item_columns == {"item_id": "product_id"}
    with pytest.raises(ConfigError, match=r"ingest.columns: unknown raw field\(s\) \['userid'\]"):
        load_config(overrides=["ingest.columns.userid=household_key"])
    with pytest.raises(ConfigError, match="mapped to more than one raw field"):
        load_config(overrides=["ingest.columns.user_id=x", "ingest.columns.item_id=x"])
    with pytest.raises(ConfigError, match="ingest.item_columns.title"):
        load_config(overrides=["ingest.item_columns.title="])


@pytest.mark.parametrize("setting, message", [
    ("ingest.max_future_skew_minutes=-5", r"key 'ingest\.max_future_skew_minutes' is -5: must be >= 0"),
    ("storage.warehouse=", r"key 'storage\.warehouse' is '': must not be empty"),
    ("storage.warehouse='   '", r"key 'storage\.warehouse' is '   ': must not be empty"),
    ("spark.shuffle_partitions=0", r"key 'spark\.shuffle_partitions' is 0: must be >= 1"),
    ("spark.arrow_batch_size=-1", r"key 'spark\.arrow_batch_size' is -1: must be >= 1"),
    ("run.log_level=LOUD", r"key 'run\.log_level' is 'LOUD': allowed: DEBUG, INFO"),
    ("generate.dirt_rate=1.5", r"key 'generate\.dirt_rate' is 1\.5: must be <= 1"),
    ("train.learning_rate=0", r"key 'train\.learning_rate' is 0\.0: must be > 0"),
    ("train.learning_rate=.nan", r"key 'train\.learning_rate' is nan: must be > 0"),
    ("models.migration_transformer.dropout=1", r"dropout' is 1\.0: must be < 1"),
])
def test_out_of_range_settings_are_refused_naming_key_and_value(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[setting])


def test_limits_accept_the_defaults_and_boundaries():
    conf = load_config(overrides=["ingest.max_future_skew_minutes=0", "run.log_level=debug",
                                  "generate.dirt_rate=0", "spark.shuffle_partitions=1"])
    assert conf.ingest.max_future_skew_minutes == 0 and conf.run.log_level == "debug"


def test_every_limit_names_a_real_setting():
    from interest_lib.conf import LIMITS

    keys = dict(_leaves(Config()))
    assert set(LIMITS) <= set(keys), sorted(set(LIMITS) - set(keys))
