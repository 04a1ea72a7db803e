"""Keyed pseudonymisation of user ids: HMAC-SHA256, computed inside Spark (no Python UDF).

The key never lives in code. Where it comes from:

1. the environment variable named by ``ingest.pseudonym_key_env`` (a secret, e.g. exported from a
   secret scope), whenever it is set;
2. else the Databricks secret scope ``ingest.pseudonym_secret_scope`` (key
   ``ingest.pseudonym_secret_name``), read with dbutils, when a scope is named;
3. else ``ingest.pseudonym_key`` from a conf file or ``--set`` -- in local development only.

A run that is not local development (env ``cluster``/``databricks``, a non-local Spark master,
or a Databricks runtime) must get its key from 1 or 2: a key from a conf file stops it.
conf/local.yml carries a public development key so that the embedded default runs without
setup: it is used only in the ``local`` environment on a local Spark master, with a warning, and
a run anywhere else that would use it stops, wherever the key came from.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from pyspark.sql import Column, functions as F

from interest_lib.conf import Config
from interest_lib.errors import SecretError
from interest_lib.logs import get_logger

log = get_logger(__name__)

_BLOCK = 64  # SHA-256 block size in bytes
PSEUDONYM_HEX_CHARS = 32  # 128 bits: collision-free in practice for billions of users
#: The public development key of conf/local.yml: anyone can recompute pseudonyms made with it.
DEV_KEY = "local-development-key-not-secret"


class MissingKeyError(SecretError):
    """No pseudonymisation key was configured (or the secret scope could not be read)."""


class PublicKeyError(SecretError):
    """The public development key would pseudonymise data outside local development."""


class KeySourceError(SecretError):
    """A run outside local development was given its key in a conf file instead of a secret."""


def _cluster_master(master: str) -> bool:
    """True for a Spark master other than local mode (standalone, YARN, Kubernetes, ...)."""
    return bool(master) and not master.startswith("local")


def non_local_run(conf: Config, spark_master: str = "") -> str:
    """Where the run is when it is not local development ("" when it is): the env, the cluster
    master or a Databricks runtime (whose single-node clusters run a local[*] master)."""
    return (f"env '{conf.env}'" if conf.env != "local" else
            f"Spark master '{spark_master}'" if _cluster_master(spark_master) else
            "Databricks" if os.environ.get("DATABRICKS_RUNTIME_VERSION") else "")


def find_dbutils():
    """Databricks' ``dbutils`` for the active session, or None where there is none (off Databricks)."""
    try:
        from pyspark.dbutils import DBUtils  # only on a Databricks runtime
    except ImportError:
        pass
    else:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is not None:
            return DBUtils(spark)
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns.get("dbutils") if shell is not None else None


def _from_secret_scope(ing, dbutils) -> str:
    """The key read from the secret scope ``ing.pseudonym_secret_scope`` with ``dbutils``."""
    scope, name = ing.pseudonym_secret_scope, ing.pseudonym_secret_name
    where = f"secret {name!r} of scope {scope!r} (ingest.pseudonym_secret_scope / ingest.pseudonym_secret_name)"
    dbutils = dbutils if dbutils is not None else find_dbutils()
    if dbutils is None:
        raise MissingKeyError(
            f"cannot read the pseudonymisation key from the {where}: dbutils is not available "
            f"(not on Databricks). Set the environment variable {ing.pseudonym_key_env} instead")
    try:
        value = dbutils.secrets.get(scope=scope, key=name)
    except Exception as err:  # the scope or key is missing, or no permission: say which
        raise MissingKeyError(f"cannot read the pseudonymisation key from the {where}: {err}") from err
    if not value:
        raise MissingKeyError(f"the {where} is empty")
    return value


def resolve_key(conf: Config, spark_master: str = "", dbutils=None) -> bytes:
    """The pseudonymisation key: the environment variable ``ingest.pseudonym_key_env`` if set,
    else the secret scope ``ingest.pseudonym_secret_scope`` if named, else -- in local development
    only -- ``ingest.pseudonym_key``.

    Args:
        conf: the whole configuration (its ``ingest`` section and the ``env`` it was loaded with).
        spark_master: the session's master URL when known (``spark.master``); "" = not known.
        dbutils: Databricks' dbutils for the secret scope; None = found with :func:`find_dbutils`.

    Raises:
        MissingKeyError: no key anywhere, or the secret scope cannot be read.
        PublicKeyError: the key is the public development key and the run is not local
            development (env other than ``local``, a cluster master, or a Databricks runtime).
        KeySourceError: the run is not local development and the key came from a conf file.
    """
    ing = conf.ingest
    where = non_local_run(conf, spark_master)
    from_env = os.environ.get(ing.pseudonym_key_env, "")
    if from_env:
        if ing.pseudonym_key and ing.pseudonym_key != from_env:
            log.info("pseudonymisation key from $%s (it overrides ingest.pseudonym_key)", ing.pseudonym_key_env)
        key = from_env
    elif where and ing.pseudonym_key == DEV_KEY:
        key = DEV_KEY  # refused below, with the message that says why
    elif where and ing.pseudonym_key:
        raise KeySourceError(
            f"refusing the pseudonymisation key given in a conf file or --set (ingest.pseudonym_key) "
            f"on {where}: outside local development the key comes from the environment variable "
            f"{ing.pseudonym_key_env} or a Databricks secret scope (ingest.pseudonym_secret_scope), "
            "never from a file or the command line. Remove ingest.pseudonym_key and set one of those")
    elif ing.pseudonym_secret_scope:
        key = _from_secret_scope(ing, dbutils)
    else:
        key = ing.pseudonym_key
    if not key:
        raise MissingKeyError(
            f"no pseudonymisation key: set the environment variable {ing.pseudonym_key_env} "
            "(or name a Databricks secret scope in ingest.pseudonym_secret_scope"
            + (")" if where else "; or ingest.pseudonym_key, in local development only)"))
    if key == DEV_KEY:
        if where:
            raise PublicKeyError(
                f"refusing to pseudonymise with the public development key (ingest.pseudonym_key = "
                f"{DEV_KEY!r}) on {where}: anyone can reverse its pseudonyms. Set the environment "
                f"variable {ing.pseudonym_key_env} to the secret key (it wins over ingest.pseudonym_key)"
            )
        log.warning("pseudonymising user ids with the PUBLIC development key (ingest.pseudonym_key from "
                    "conf/local.yml): fine for local development only; set %s for real data",
                    ing.pseudonym_key_env)
    return key.encode("utf-8")


def pseudonymise_py(raw_id: str, key: bytes) -> str:
    """Reference implementation in Python (for tests and for mapping ground truth ids)."""
    return hmac.new(key, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]


def pseudonymise_col(col: Column | str, key: bytes) -> Column:
    """HMAC-SHA256(key, col) as lowercase hex, truncated like :func:`pseudonymise_py`."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in key)
    outer_pad = bytes(b ^ 0x5C for b in key)
    value = F.col(col) if isinstance(col, str) else col
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(value, "UTF-8")), 256))
    outer = F.sha2(F.concat(F.lit(outer_pad), inner), 256)
    return F.when(value.isNull(), F.lit(None)).otherwise(F.substring(outer, 1, PSEUDONYM_HEX_CHARS))
