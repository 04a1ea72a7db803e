"""Which pseudonymisation key a run uses: the secret from the environment beats any conf file key,
and the public development key is for local development only."""

import logging

import pytest

from interest_lib.conf import load_config
from interest_lib.ingest.pseudonymise import DEV_KEY, MissingKeyError, PublicKeyError, resolve_key
from interest_lib.logs import LOGGER_NAME

ENV = "INTEREST_PSEUDONYM_KEY"


@pytest.fixture
def warnings():
    """WARNING records of the project logger (it does not propagate to pytest's caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_local_yml_carries_the_public_development_key():
    assert load_config(env="local").ingest.pseudonym_key == DEV_KEY


def test_the_environment_secret_wins_over_the_conf_file_key(monkeypatch, warnings):
    monkeypatch.setenv(ENV, "prod-secret")
    assert resolve_key(load_config(env="local")) == b"prod-secret"  # over local.yml's key
    assert resolve_key(load_config(env="local", overrides=["ingest.pseudonym_key=other"])) == b"prod-secret"
    assert resolve_key(load_config(env="cluster")) == b"prod-secret"
    assert resolve_key(load_config(env="local"), "spark://10.0.0.1:7077") == b"prod-secret"
    assert not warnings


def test_the_development_key_warns_locally(monkeypatch, warnings):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert resolve_key(load_config(env="local"), "local[2]") == DEV_KEY.encode()
    assert len(warnings) == 1 and "PUBLIC development key" in warnings[0].getMessage()
    assert ENV in warnings[0].getMessage()


@pytest.mark.parametrize("env, master, where", [
    ("cluster", "", "env 'cluster'"),
    ("databricks", "local[8]", "env 'databricks'"),
    ("local", "spark://10.0.0.1:7077", "Spark master 'spark://10.0.0.1:7077'"),
    ("local", "yarn", "Spark master 'yarn'"),
])
def test_the_development_key_is_refused_outside_local_development(monkeypatch, env, master, where):
    monkeypatch.delenv(ENV, raising=False)
    conf = load_config(env=env, overrides=[f"ingest.pseudonym_key={DEV_KEY}"])
    with pytest.raises(PublicKeyError) as err:
        resolve_key(conf, master)
    assert where in str(err.value) and "ingest.pseudonym_key" in str(err.value) and ENV in str(err.value)
    # The same key from the environment variable is refused too: it is public wherever it comes from.
    monkeypatch.setenv(ENV, DEV_KEY)
    with pytest.raises(PublicKeyError):
        resolve_key(load_config(env=env), master)


def test_the_development_key_is_refused_on_a_databricks_runtime_even_in_local_mode(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")  # single-node clusters run local[*]
    with pytest.raises(PublicKeyError, match="on Databricks"):
        resolve_key(load_config(env="local"), "local[8]")


def test_no_key_at_all_names_the_variable(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(MissingKeyError, match=ENV):
        resolve_key(load_config(env="cluster"))
    monkeypatch.setenv("OTHER_KEY_VAR", "s")
    assert resolve_key(load_config(env="cluster", overrides=["ingest.pseudonym_key_env=OTHER_KEY_VAR"])) == b"s"
