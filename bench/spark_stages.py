"""Run generate -> ingest -> sessionize once in Spark and print JSON timings (used by the bench).

``python bench/spark_stages.py WORKDIR USERS MEAN_EVENTS``; peak memory is the largest summed
RSS of this process tree (driver Python + JVM + Python workers), sampled every 0.2 s.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me] + me.children(recursive=True):
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def reset(self):
        """Start a new peak for the next stage."""
        self.peak = 0

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()


def main(workdir: str, users: int, mean_events: int) -> dict:
    from interest_lib.conf import load_config
    from interest_lib.generate.job import run_generate
    from interest_lib.ingest import run_ingest
    from interest_lib.logs import setup_logging
    from interest_lib.sessions import run_sessionize
    from interest_lib.spark import get_spark
    from interest_lib.storage import Tables

    setup_logging("WARNING")
    conf = load_config(overrides=[
        f"storage.warehouse={workdir}/warehouse", f"storage.raw_dir={workdir}/raw",
        f"generate.users={users}", f"generate.mean_events_per_user={mean_events}",
        "spark.driver_memory=8g",
    ])
    mem = PeakMemory().start()
    spark = get_spark(conf)
    tables = Tables(spark, conf.storage)
    out = {}
    for name, fn in [
        ("generate", lambda: run_generate(spark, conf, tables)),
        ("ingest", lambda: run_ingest(spark, conf, tables)),
        ("sessionize", lambda: run_sessionize(spark, conf, tables)),
    ]:
        mem.reset()
        start = time.perf_counter()
        result = fn()
        out[f"{name}_s"] = time.perf_counter() - start
        out[f"{name}_peak_mb"] = mem.peak / 2**20
        if name == "ingest":
            out.update(rows_in=result.rows_in, accepted=result.accepted,
                       quarantined=result.quarantined, duplicates=result.duplicates_removed)
        if name == "sessionize":
            out["sessions"] = result.sessions_written
    mem.stop()
    spark.stop()
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
