"""A class-data-sharing archive for the tests' Spark JVMs (JDK 17 AppCDS, dynamic archive).

A Spark JVM spends most of a short test's CPU loading and verifying the same ~10k classes.
The JVM can dump the classes it loaded into an archive (``-XX:ArchiveClassesAtExit``) and map
them from it at the next start (``-XX:SharedArchiveFile``). Measured on this 2-core machine
(local session + one small aggregation): 6.1 CPU s -> 3.3 CPU s per JVM, the session up in
1.8 s instead of 3.5 s. The suite starts about fifty JVMs (the session of each run, the jobs the
kill, stream, concurrency and spark-submit tests run as processes, the standalone cluster).

The archive is built once per machine for each (java, pyspark) pair, by one small Spark job
(``python -m tests.jvm_archive OUT``) that touches the code paths the jobs use (SQL, Parquet,
JSON and CSV readers, joins, windows, aggregations, a pandas UDF over Arrow), under a lock, and
published by an atomic rename; it lives beside the other test caches
(``~/.cache/interest-evolution/jvm-cds``), where only the ``KEEP`` most recently used are
kept (each is ~175 MB). The key leaves out where the jars are: JDK 17 maps an archive whose
classpath moved as a whole (another checkout's venv) as long as each jar has the size and time
it had when the archive was dumped, and uv installs pyspark by hard links from its cache, so
every checkout of one pyspark build shares one archive (until 2026-12-05 the key held the
venv's path, so each clean clone built its own, ~29 CPU s). The JVM checks the archive against
the jars itself and ignores it, silently (``-Xlog:cds=off``), when they differ.
``INTEREST_TEST_CDS=0`` turns it off.
"""


import fcntl
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

_CACHED: dict[str, Optional[str]] = {}
#: Options a JVM gets when the archive exists (quiet: a mismatch falls back to normal loading).
USE = "-XX:SharedArchiveFile={path} -Xlog:cds=off,cds+dynamic=off"
#: How many archives the cache keeps (the most recently used); a checkout whose was removed
#: builds it again (~20 s).
KEEP = 3


def _root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "interest-evolution" / "jvm-cds"


def _key() -> str:
    """:func:`archive_key` of the installed pyspark's jars and this machine's java."""
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return archive_key(Path(pyspark.__file__).parent / "jars", java)


def archive_key(jars: Path, java: str) -> str:
    """What an archive was made from: the java build and the jars (names, sizes, times), not their folder."""
    digest = hashlib.sha256(java.encode())
    for jar in sorted(jars.glob("*.jar")):
        st = jar.stat()
        digest.update(f"{jar.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def class_archive() -> Optional[str]:
    """The archive's path for this java + pyspark, built now if missing; None when turned off or
    when building it failed (the tests then run without it)."""
    if os.environ.get("INTEREST_TEST_CDS", "1") == "0":
        return None
    if "path" in _CACHED:
        return _CACHED["path"]
    path: Optional[Path] = None
    try:
        root = _root()
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"spark-{_key()}.jsa"
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same archive
            if not path.is_file():
                _build(path)
            os.utime(path)  # the time of last use, which pruning goes by
            prune(root, keep=KEEP)
    except Exception as exc:  # the archive only saves time: never fail a test run over it
        print(f"tests.jvm_archive: running without a class archive ({exc})", file=sys.stderr)
        path = None
    _CACHED["path"] = str(path) if path and path.is_file() else None
    return _CACHED["path"]


def prune(root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` most recently used archives under ``root``; returns the removed."""
    archives = sorted(root.glob("spark-*.jsa"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        old.unlink(missing_ok=True)
    return archives[keep:]


def _build(path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "tests.jvm_archive", str(tmp)], capture_output=True,
                          text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"building it failed (exit {proc.returncode}): {proc.stderr[-800:]}")
    os.replace(tmp, path)
    print(f"tests.jvm_archive: built {path} in {time.time() - start:.0f} s", file=sys.stderr)


def _warm_up(out: str) -> None:
    """One local session that loads the classes the jobs use, then dumps them to ``out``."""
    import tempfile

    import pandas as pd
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    from tests.jvm import FAST_JVM, NO_CODEGEN

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder.master("local[2]").appName("jvm-archive")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.extraJavaOptions",
                       f"{FAST_JVM} -XX:ArchiveClassesAtExit={out} -Xlog:cds=off,cds+dynamic=off"))
    for key, value in NO_CODEGEN.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    gateway = spark.sparkContext._gateway.proc  # the JVM: it exits when its stdin closes
    with tempfile.TemporaryDirectory() as tmp:
        df = spark.range(2000).selectExpr("id", "id % 13 AS user", "CAST(id % 5 AS STRING) AS cat",
                                          "TIMESTAMP '2026-01-01 00:00:00' + make_interval(0, 0, 0, 0, 0, id, 0) AS ts")
        df.write.mode("overwrite").partitionBy("cat").parquet(f"{tmp}/p")
        df.write.mode("overwrite").json(f"{tmp}/j")
        df.write.mode("overwrite").option("header", True).csv(f"{tmp}/c")
        back = spark.read.parquet(f"{tmp}/p")
        spark.read.json(f"{tmp}/j").count()
        spark.read.option("header", True).csv(f"{tmp}/c").count()
        w = Window.partitionBy("user").orderBy("ts")
        ranked = back.withColumn("prev", F.lag("ts").over(w)).withColumn("n", F.row_number().over(w))
        agg = ranked.groupBy("user", "cat").agg(F.count("*").alias("n"), F.collect_list("id").alias("ids"),
                                                F.max("ts").alias("last"))
        agg.join(back.groupBy("user").count(), "user").filter("n > 1").orderBy("user").collect()

        @F.pandas_udf("double")
        def half(v: pd.Series) -> pd.Series:
            return v / 2.0

        back.select(half("id")).toPandas()
        spark.createDataFrame(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})).collect()
        spark.sql("SELECT explode(sequence(1, 5)) AS x").agg(F.sum("x")).collect()
    spark.stop()
    gateway.stdin.close()
    gateway.wait(timeout=300)  # the JVM writes the archive as it exits


if __name__ == "__main__":
    _warm_up(sys.argv[1])
