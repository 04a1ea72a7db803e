"""The run store, below the stages: where training runs live and how later stages find them.

``fs`` resolves run-store locations (local paths, ``file://``, ``s3://`` / ``s3a://``,
``dbfs:/``, any fsspec URL); ``store`` holds a run's paths, its safe records, run ids and the
latest-run pointer per task. Training writes runs; evaluate and score only read them, so they
import this package and never :mod:`interest_lib.training`. Nothing here imports pyspark or torch
at module level.
"""
