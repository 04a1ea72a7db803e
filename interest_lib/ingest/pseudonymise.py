"""Moved to :mod:`interest_lib.pseudonymise` (featurize pseudonymises too, and must not import
ingest). Re-exported here for existing callers."""

from interest_lib.pseudonymise import *  # noqa: F401,F403
from interest_lib.pseudonymise import (  # noqa: F401
    DEV_KEY, PSEUDONYM_HEX_CHARS, KeySourceError, MissingKeyError, PublicKeyError,
)
