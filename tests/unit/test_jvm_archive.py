"""The tests' JVM class-archive cache keeps only the most recently used archives."""

import os
import shutil

import pytest

from tests.jvm_archive import archive_key, prune

pytestmark = pytest.mark.unit


def test_prune_keeps_the_most_recently_used_archives(tmp_path):
    for age, name in enumerate(["a", "b", "c", "d", "e"]):  # a: used last, e: used first
        path = tmp_path / f"spark-{name}.jsa"
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 - age * 60, 1_000_000 - age * 60))
    (tmp_path / ".lock").write_bytes(b"")
    other = tmp_path / ".tmp-123-spark-f.jsa"  # an archive another run is still building
    other.write_bytes(b"x")
    os.utime(other, (0, 0))

    removed = prune(tmp_path, keep=3)

    assert sorted(p.name for p in removed) == ["spark-d.jsa", "spark-e.jsa"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", ".tmp-123-spark-f.jsa", "spark-a.jsa",
                                                          "spark-b.jsa", "spark-c.jsa"]


def test_checkouts_of_one_pyspark_build_share_one_archive(tmp_path):
    """The key leaves out the jars' folder (the JVM maps an archive whose classpath moved whole),
    so another checkout's venv, hard-linked from uv's cache, finds the archive already built."""
    first = tmp_path / "clone1" / "jars"
    first.mkdir(parents=True)
    (first / "spark-core.jar").write_bytes(b"classes")
    second = tmp_path / "clone2" / "jars"
    shutil.copytree(first, second, copy_function=os.link)
    rebuilt = tmp_path / "clone3" / "jars"
    rebuilt.mkdir(parents=True)
    (rebuilt / "spark-core.jar").write_bytes(b"other classes")

    key = archive_key(first, "openjdk 17.0.9")
    assert archive_key(second, "openjdk 17.0.9") == key
    assert archive_key(rebuilt, "openjdk 17.0.9") != key  # another build: the JVM would refuse the archive
    assert archive_key(first, "openjdk 21.0.1") != key
