"""``interest stream``: Structured Streaming from a landing folder (or Kafka) to fresh scores.

:mod:`.sources` builds the streaming raw records (the same parser as batch ingest),
:mod:`.micro_batch` is the ``foreachBatch`` function (validation, quarantine, dedupe,
idempotent bronze append, sessions, profiles, alerts, scores), :mod:`.alerts` detects migrations
on the partial window, :mod:`.job` runs the query and logs its progress.
"""
