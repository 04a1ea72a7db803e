"""Which pseudonymisation key a run uses: the secret from the environment beats any conf file key,
and the public development key is for local development only."""

import logging

import pytest

from interest_lib.conf import load_config
from interest_lib.ingest.pseudonymise import (DEV_KEY, KeySourceError, MissingKeyError, PublicKeyError,
                                              find_dbutils, resolve_key)
from interest_lib.logs import LOGGER_NAME

pytestmark = pytest.mark.unit

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


class SecretScopes:
    """Databricks' ``dbutils`` as far as resolve_key uses it (``dbutils.secrets.get``): Databricks
    is not reachable from the tests, so this stands in for it, failing as it does on a missing key."""

    def __init__(self, secrets: dict):
        self.secrets = self
        self._secrets = secrets

    def get(self, scope: str, key: str) -> str:
        if (scope, key) not in self._secrets:
            raise ValueError(f"Secret does not exist with scope: {scope} and key: {key}")
        return self._secrets[(scope, key)]


NON_LOCAL = [("cluster", ""), ("databricks", "local[8]"), ("local", "spark://10.0.0.1:7077"), ("local", "yarn")]


@pytest.mark.parametrize("env, master", NON_LOCAL)
def test_a_conf_file_key_is_refused_outside_local_development(monkeypatch, env, master):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    conf = load_config(env=env, overrides=["ingest.pseudonym_key=a-real-looking-secret"])
    with pytest.raises(KeySourceError) as err:
        resolve_key(conf, master)
    msg = str(err.value)
    assert "ingest.pseudonym_key" in msg and ENV in msg and "ingest.pseudonym_secret_scope" in msg
    assert "a-real-looking-secret" not in msg  # the message never repeats the secret
    # The same key from the environment is what such a run must use.
    monkeypatch.setenv(ENV, "a-real-looking-secret")
    assert resolve_key(conf, master) == b"a-real-looking-secret"


def test_a_conf_file_key_is_refused_on_a_databricks_runtime(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    with pytest.raises(KeySourceError, match="on Databricks"):
        resolve_key(load_config(env="local", overrides=["ingest.pseudonym_key=s3cret"]), "local[8]")


def test_a_conf_file_key_is_used_in_local_development_without_a_warning(monkeypatch, warnings):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert resolve_key(load_config(env="local", overrides=["ingest.pseudonym_key=s3cret"]), "local[2]") == b"s3cret"
    assert not warnings


def test_the_key_comes_from_the_secret_scope_when_the_variable_is_unset(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    scopes = SecretScopes({("interest-evolution", "pseudonym-key"): "scope-secret",
                           ("other", "k2"): "other-secret"})
    conf = load_config(env="databricks")  # conf/databricks.yml names the scope interest-evolution
    assert conf.ingest.pseudonym_secret_scope == "interest-evolution"
    assert resolve_key(conf, "local[8]", dbutils=scopes) == b"scope-secret"
    other = load_config(env="cluster", overrides=["ingest.pseudonym_secret_scope=other",
                                                  "ingest.pseudonym_secret_name=k2"])
    assert resolve_key(other, "yarn", dbutils=scopes) == b"other-secret"
    monkeypatch.setenv(ENV, "env-secret")  # the variable wins over the scope
    assert resolve_key(conf, "local[8]", dbutils=scopes) == b"env-secret"


def test_a_secret_scope_that_cannot_be_read_names_the_scope_and_key(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    conf = load_config(env="databricks", overrides=["ingest.pseudonym_secret_name=missing"])
    with pytest.raises(MissingKeyError, match="'missing' of scope 'interest-evolution'") as err:
        resolve_key(conf, dbutils=SecretScopes({}))
    assert "Secret does not exist" in str(err.value)
    with pytest.raises(MissingKeyError, match="is empty"):
        resolve_key(conf, dbutils=SecretScopes({("interest-evolution", "missing"): ""}))


def test_a_secret_scope_without_dbutils_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert find_dbutils() is None  # no Databricks runtime, no notebook shell here
    with pytest.raises(MissingKeyError) as err:
        resolve_key(load_config(env="databricks"))
    msg = str(err.value)
    assert "dbutils is not available" in msg and "'interest-evolution'" in msg and ENV in msg


def test_no_key_off_local_names_the_variable_and_the_scope_but_not_the_conf_key(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(MissingKeyError) as err:
        resolve_key(load_config(env="cluster"))
    assert ENV in str(err.value) and "ingest.pseudonym_secret_scope" in str(err.value)
    assert "in local development only" not in str(err.value)
