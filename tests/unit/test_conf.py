"""Configuration: defaults documented in base.yml, overlays, overrides and clear errors."""

import dataclasses

import pytest
import yaml

from interest_lib.conf import CONF_DIR, Config, ConfigError, ModelsConf, load_config, model_names, model_spec

pytestmark = pytest.mark.unit


def _leaves(obj, prefix=""):
    """(dotted key, default) of every setting; the models' blocks are their own YAML files."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, ModelsConf):
            continue
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


@pytest.mark.parametrize("name", model_names())
def test_each_model_yml_lists_every_param_with_its_default_and_a_comment(name):
    """conf/models/<name>.yml is the model's documented defaults: every field of its Params,
    equal to the dataclass default, each on a line with a comment; nothing else."""
    path = CONF_DIR / "models" / f"{name}.yml"
    spec = model_spec(name)
    defaults = {f.name: getattr(spec.params(), f.name) for f in dataclasses.fields(spec.params)}
    assert yaml.safe_load(path.read_text()) == defaults
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "#" in line, f"{path.name}: no comment on {line!r}"
    assert set(spec.limits) <= set(defaults), f"{name}: LIMITS names unknown params"


def test_model_blocks_are_overridden_checked_and_logged_like_any_key(tmp_path):
    extra = tmp_path / "extra.yml"
    extra.write_text("models:\n  migration_augru:\n    hidden: 16\n    dropout: 0.2\n")
    conf = load_config(conf_file=str(extra), overrides=["models.migration_augru.hidden=24"])
    assert (conf.models.migration_augru.hidden, conf.models.migration_augru.dropout) == (24, 0.2)
    assert conf.models.migration_transformer.d_model == 64  # from conf/models/migration_transformer.yml
    assert conf.to_dict()["models"]["migration_augru"]["hidden"] == 24
    assert set(conf.to_dict()["models"]) == set(model_names())
    with pytest.raises(ConfigError, match=r"--set models\.migration_augru\.hiden=1: unknown key 'models\.migration_augru\.hiden'"):
        load_config(overrides=["models.migration_augru.hiden=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'models\.nope' \(registered models: evolution_gru, "):
        load_config(overrides=["models.nope.hidden=1"])
    with pytest.raises(ConfigError, match=r"key 'models\.migration_augru\.hidden' expects int"):
        load_config(overrides=["models.migration_augru.hidden=wide"])
    with pytest.raises(ConfigError, match=r"key 'train\.migration_model' is 'nope': allowed: evolution_gru, migration_augru"):
        load_config(overrides=["train.migration_model=nope"])


def test_loading_the_configuration_imports_no_model(tmp_path):
    """Model modules (and torch) are imported only when a model's block is read or set."""
    import subprocess
    import sys

    code = ("import sys; from interest_lib.conf import load_config; c = load_config(); c.to_dict(); "
            "print('torch' in sys.modules, any(m.startswith('interest_lib.models') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_backend_and_feed_choices_come_from_the_registry(monkeypatch):
    from interest_lib import registry

    with pytest.raises(ConfigError, match=r"key 'train\.backend' is 'mpi': allowed: torch_distributor, horovod, driver"):
        load_config(overrides=["train.backend=mpi"])
    with pytest.raises(ConfigError, match=r"key 'train\.feed' is 'tfrecord': allowed: delta, petastorm"):
        load_config(overrides=["train.feed=tfrecord"])
    assert registry.resolve(registry.BACKENDS["torch_distributor"]).name == "torch_distributor"
    assert registry.resolve(registry.FEEDS["delta"]).__name__ == "DeltaArrowFeed"


def test_a_setting_with_its_own_syntax_is_parsed_at_load_by_its_owner():
    """score.event_ranker (RankerParams as key=value,...) is refused when the configuration loads,
    not first when a scoring run builds the learned ranker; a good value parses to the ranker's
    settings, and the default imports no model."""
    from interest_lib.conf import parsed_setting

    with pytest.raises(ConfigError, match=r"key 'score\.event_ranker' is 'epochs=many': ranker setting 'epochs' "
                                          r"is 'many': expected a number \(int\)"):
        load_config(overrides=["score.event_ranker=epochs=many"])
    with pytest.raises(ConfigError, match=r"key 'score\.event_ranker' is 'depth=3': unknown ranker setting 'depth'"):
        load_config(overrides=["score.event_ranker=depth=3"])
    conf = load_config(overrides=["score.event_ranker=epochs=5,hour_habit=0"])
    params = parsed_setting(conf, "score.event_ranker")
    assert (params.epochs, params.hour_habit, params.hidden) == (5, False, 96)
    conf.score.event_ranker = "epochs=5,hour_habit=yes"  # changed after loading: still refused by name
    with pytest.raises(ConfigError, match=r"key 'score\.event_ranker' is 'epochs=5,hour_habit=yes': .*expected 0 or 1"):
        parsed_setting(conf, "score.event_ranker")


def test_evaluation_targets_are_settings():
    conf = load_config(overrides=["evaluate.targets.migration.all.ndcg@10=0.25"])
    assert conf.evaluate.targets["migration"] == {"all": {"ndcg@10": 0.25}, "switch": {"ndcg@10": 0.20}}
    assert conf.evaluate.targets["evolution"] == {"all": {"js": 0.10, "stage_acc": 0.10}}
    with pytest.raises(ConfigError, match=r"evaluate\.targets\.migration\.all\.ndgc@10: unknown metric"):
        load_config(overrides=["evaluate.targets.migration.all.ndgc@10=0.1"])
    with pytest.raises(ConfigError, match=r"key 'evaluate\.targets\.evolution\.all\.js' is 'high'"):
        load_config(overrides=["evaluate.targets.evolution.all.js=high"])


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
        for f in CONF_DIR.rglob("*.yml"):
            z.writestr(f"interest_lib/_conf/{f.relative_to(CONF_DIR).as_posix()}", f.read_text())
    conf = load_config(env="cluster", conf_dir=zipfile.Path(archive, "interest_lib/_conf/"),
                       overrides=["train.migration_model=migration_augru"])
    assert conf.spark.shuffle_partitions == 400
    assert conf.models.migration_augru.hidden == 64  # conf/models/ read from the zip too


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
    ("models.migration_transformer.dropout=1", r"key 'models\.migration_transformer\.dropout' is 1\.0: must be < 1"),
    ("storage.engine=hive", r"key 'storage\.engine' is 'hive': allowed: auto, delta-spark, delta-rs"),
    ("storage.lock_timeout_seconds=-1", r"key 'storage\.lock_timeout_seconds' is -1\.0: must be >= 0"),
    ("sessionize.gap_minutes=0", r"key 'sessionize\.gap_minutes' is 0: must be > 0"),
    ("features.step_days=8", r"key 'features\.step_days' is 8: must be <= 7 \(features\.window_days\)"),
    ("features.step_days=0", r"key 'features\.step_days' is 0: must be >= 1"),
    ("features.decay=1", r"key 'features\.decay' is 1\.0: must be < 1"),
    ("features.category_level=4", r"key 'features\.category_level' is 4: allowed: 1, 2, 3"),
    ("migration.min_group_size=1",
     r"key 'migration\.min_group_size' is 1: must be >= 2 \(a smaller value publishes groups of a single user\)"),
    ("privacy.dp_epsilon=0", r"key 'privacy\.dp_epsilon' is 0\.0: must be > 0 \(or null: off\)"),
    ("privacy.dp_epsilon=.inf", r"key 'privacy\.dp_epsilon' is inf: must be < inf \(or null: off\)"),
    ("privacy.dp_max_cells_per_user=0", r"key 'privacy\.dp_max_cells_per_user' is 0: must be >= 1"),
    ("score.explore_share=1.5", r"key 'score\.explore_share' is 1\.5: must be <= 1"),
    ("score.migration=lstm", r"key 'score\.migration' is 'lstm': allowed: model, popularity, decayed_frequency, "
                             r"markov, persistence, personal_frequency \(or an MLflow model URI"),
    ("train.grad_clip_norm=-1", r"key 'train\.grad_clip_norm' is -1\.0: must be >= 0"),
    ("train.min_delta=-0.1", r"key 'train\.min_delta' is -0\.1: must be >= 0"),
])
def test_out_of_range_settings_are_refused_naming_key_and_value(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[setting])


def test_limits_accept_the_defaults_and_boundaries():
    conf = load_config(overrides=["ingest.max_future_skew_minutes=0", "run.log_level=debug",
                                  "generate.dirt_rate=0", "spark.shuffle_partitions=1", "features.step_days=7",
                                  "migration.min_group_size=2", "privacy.dp_epsilon=0.5", "score.explore_share=1",
                                  "score.migration=runs:/abc/model", "train.grad_clip_norm=0"])
    assert conf.ingest.max_future_skew_minutes == 0 and conf.run.log_level == "debug"
    assert conf.privacy.dp_epsilon == 0.5 and conf.score.migration == "runs:/abc/model"
    assert load_config(overrides=["features.window_days=3", "features.step_days=1"]).features.step_days == 1


def test_every_limit_names_a_real_setting():
    from interest_lib.conf import LIMITS

    keys = dict(_leaves(Config()))
    assert set(LIMITS) <= set(keys), sorted(set(LIMITS) - set(keys))
