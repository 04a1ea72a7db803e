"""The tests' JVM class-archive cache keeps only the most recently used archives."""

import os

import pytest

from tests.jvm_archive import prune

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
