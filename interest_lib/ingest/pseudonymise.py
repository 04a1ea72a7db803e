"""Keyed pseudonymisation of user ids: HMAC-SHA256, computed inside Spark (no Python UDF).

The key never lives in code: it comes from configuration (``ingest.pseudonym_key``) or from the
environment variable named by ``ingest.pseudonym_key_env``.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from pyspark.sql import Column, functions as F

from interest_lib.conf import IngestConf

_BLOCK = 64  # SHA-256 block size in bytes
PSEUDONYM_HEX_CHARS = 32  # 128 bits: collision-free in practice for billions of users


class MissingKeyError(RuntimeError):
    """No pseudonymisation key was configured."""


def resolve_key(conf: IngestConf) -> bytes:
    """The pseudonymisation key from conf, else from the configured environment variable."""
    key = conf.pseudonym_key or os.environ.get(conf.pseudonym_key_env, "")
    if not key:
        raise MissingKeyError(
            f"no pseudonymisation key: set ingest.pseudonym_key or the environment variable "
            f"{conf.pseudonym_key_env}"
        )
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
