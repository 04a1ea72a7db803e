"""The sequence contract: how gold.training_sequences encodes time gaps and sessions, in one
place below the stages (the featurize job writes it; the models, scoring and explanations read it).

``ev_interval`` holds the bucket of the gap since the user's previous event: 0 is padding, 1 the
user's first event, 2..8 gaps up to each bound of :data:`INTERVAL_BUCKETS` and beyond. A session
starts at the first event and at every gap of ``sessionize.gap_minutes`` or more, i.e. from the
bucket :func:`new_session_bucket` gives for that setting. No pyspark, no torch.
"""

from __future__ import annotations

import bisect

__all__ = ["INTERVAL_BUCKETS", "FIRST_EVENT_BUCKET", "NUM_INTERVAL_BUCKETS", "interval_bucket_of",
           "new_session_bucket", "default_session_bucket"]

#: ``ev_interval``: upper bounds (seconds) of the time-gap buckets 2..7 (bucket 8: longer;
#: bucket 1: the user's first event; 0: padding). Written by the featurize job, read by the models.
INTERVAL_BUCKETS = (60, 300, 1800, 7200, 86400, 7 * 86400)
FIRST_EVENT_BUCKET = 1
#: Distinct ``ev_interval`` values besides padding (embedding table size).
NUM_INTERVAL_BUCKETS = len(INTERVAL_BUCKETS) + 2


def interval_bucket_of(seconds: float) -> int:
    """The ``ev_interval`` bucket of a gap of ``seconds`` since the previous event."""
    return 2 + bisect.bisect_right(INTERVAL_BUCKETS, seconds)


def new_session_bucket(gap_minutes: float) -> int:
    """The first ``ev_interval`` bucket that starts a session for a ``gap_minutes`` inactivity
    gap (``sessionize.gap_minutes``)."""
    return interval_bucket_of(gap_minutes * 60)


def default_session_bucket() -> int:
    """:func:`new_session_bucket` of the default ``sessionize.gap_minutes`` (models trained
    before the bucket was recorded with them used it)."""
    from interest_lib.conf import SessionizeConf

    return new_session_bucket(SessionizeConf().gap_minutes)
