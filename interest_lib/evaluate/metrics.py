"""Moved to :mod:`interest_lib.metrics` (baselines and scoring use it too, from below the
stages). Re-exported here for existing callers."""

from interest_lib.metrics import *  # noqa: F401,F403
from interest_lib.metrics import DEFAULT_KS  # noqa: F401
