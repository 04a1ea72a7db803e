"""Keyed pseudonymisation of user ids: HMAC-SHA256, computed inside Spark (no Python UDF).

The key never lives in code. The environment variable named by ``ingest.pseudonym_key_env``
(a secret, e.g. exported from a secret scope) wins over ``ingest.pseudonym_key`` from any conf
file. conf/local.yml carries a public development key so that the embedded default runs without
setup: it is used only in the ``local`` environment on a local Spark master, with a warning, and
a run anywhere else that would use it stops.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from pyspark.sql import Column, functions as F

from interest_lib.conf import Config
from interest_lib.logs import get_logger

log = get_logger(__name__)

_BLOCK = 64  # SHA-256 block size in bytes
PSEUDONYM_HEX_CHARS = 32  # 128 bits: collision-free in practice for billions of users
#: The public development key of conf/local.yml: anyone can recompute pseudonyms made with it.
DEV_KEY = "local-development-key-not-secret"


class MissingKeyError(RuntimeError):
    """No pseudonymisation key was configured."""


class PublicKeyError(RuntimeError):
    """The public development key would pseudonymise data outside local development."""


def _cluster_master(master: str) -> bool:
    """True for a Spark master other than local mode (standalone, YARN, Kubernetes, ...)."""
    return bool(master) and not master.startswith("local")


def resolve_key(conf: Config, spark_master: str = "") -> bytes:
    """The pseudonymisation key: the environment variable ``ingest.pseudonym_key_env`` if set,
    else ``ingest.pseudonym_key``.

    Args:
        conf: the whole configuration (its ``ingest`` section and the ``env`` it was loaded with).
        spark_master: the session's master URL when known (``spark.master``); "" = not known.

    Raises:
        MissingKeyError: neither is set.
        PublicKeyError: the key is the public development key and the run is not local
            development (env other than ``local``, a cluster master, or a Databricks runtime).
    """
    ing = conf.ingest
    from_env = os.environ.get(ing.pseudonym_key_env, "")
    if from_env:
        if ing.pseudonym_key and ing.pseudonym_key != from_env:
            log.info("pseudonymisation key from $%s (it overrides ingest.pseudonym_key)", ing.pseudonym_key_env)
        key = from_env
    else:
        key = ing.pseudonym_key
    if not key:
        raise MissingKeyError(
            f"no pseudonymisation key: set the environment variable {ing.pseudonym_key_env} "
            "(or ingest.pseudonym_key)"
        )
    if key == DEV_KEY:
        where = (f"env '{conf.env}'" if conf.env != "local" else
                 f"Spark master '{spark_master}'" if _cluster_master(spark_master) else
                 "Databricks" if os.environ.get("DATABRICKS_RUNTIME_VERSION") else "")
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
