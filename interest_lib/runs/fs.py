"""Run-store locations on any filesystem fsspec knows: one small vocabulary of file operations.

A location is a plain local path, a ``file://`` URL, ``dbfs:/...`` (Databricks; read through the
driver's and workers' ``/dbfs`` FUSE mount), ``s3a://`` / ``s3n://`` (Hadoop's names, read as
``s3://`` with s3fs) or any other fsspec URL (``s3://``, ``gs://``, ``abfss://``, ``memory://``).
Local locations keep working without fsspec's protocol layer and are written atomically
(temporary name + rename); object stores make a file visible only once it is complete.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import IO, Callable

__all__ = ["canonical", "is_local", "join", "basename", "exists", "read_bytes", "write_bytes",
           "write_with", "open_file", "glob", "makedirs", "remove_tree", "local_copy"]

#: Hadoop's names for S3, read with fsspec's ``s3`` (s3fs).
_S3_ALIASES = ("s3a://", "s3n://")


def canonical(location: str) -> str:
    """The one spelling of ``location``: an absolute local path (``file://`` and ``dbfs:/``
    resolved), or a URL with Hadoop's S3 scheme names replaced by ``s3://``; no trailing slash."""
    location = str(location)
    if location.startswith("dbfs:"):
        return "/dbfs/" + location[len("dbfs:"):].lstrip("/")
    if location.startswith("file://"):
        location = location[len("file://"):]
    for alias in _S3_ALIASES:
        if location.startswith(alias):
            location = "s3://" + location[len(alias):]
    if "://" not in location:
        return os.path.abspath(location)
    return _fsspec_spelling(location.rstrip("/"))


def _fsspec_spelling(url: str) -> str:
    """``url`` as its fsspec filesystem spells it (``memory://a`` -> ``memory:///a``), so that
    listings and the locations they were listed from compare equal."""
    import fsspec

    protocol = url.split("://", 1)[0]
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError):  # implementation not installed: keep the URL as given
        return url
    name = cls.protocol if isinstance(cls.protocol, str) else cls.protocol[0]
    return f"{name}://{cls._strip_protocol(url)}"


def is_local(location: str) -> bool:
    """True when ``location`` is (or resolves to) a local path."""
    return "://" not in canonical(location)


def _fs(location: str):
    """(fsspec filesystem, path inside it) of a non-local location."""
    import fsspec

    return fsspec.core.url_to_fs(canonical(location))


def join(location: str, *parts: str) -> str:
    """``location`` / ``parts``: os.path for local paths, ``/`` for URLs."""
    if is_local(location):
        return os.path.join(canonical(location), *parts)
    return posixpath.join(canonical(location), *parts)


def basename(location: str) -> str:
    """The last component of ``location``."""
    return canonical(location).rstrip("/").rsplit("/", 1)[-1]


def exists(location: str) -> bool:
    """True when a file or folder exists at ``location``."""
    if is_local(location):
        return os.path.exists(canonical(location))
    fs, path = _fs(location)
    return fs.exists(path)


def open_file(location: str, mode: str = "rb") -> IO:
    """An open file at ``location`` (a context manager); ``w``/``a`` create its folder."""
    if is_local(location):
        path = canonical(location)
        if mode[0] in "wa":
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, mode)
    fs, path = _fs(location)
    if mode[0] == "a":  # object stores cannot append: rewrite the file with the new tail
        return _Appender(fs, path, "b" not in mode)
    return fs.open(path, mode)


class _Appender:
    """``open(..., "a")`` for filesystems without append: buffers, then rewrites the whole file."""

    def __init__(self, fs, path: str, text: bool):
        self.fs, self.path, self.text, self.parts = fs, path, text, []

    def write(self, data) -> int:
        self.parts.append(data.encode() if self.text else data)
        return len(data)

    def __enter__(self):
        return self

    def __exit__(self, kind, *_exc) -> None:
        if kind is None:
            old = self.fs.cat_file(self.path) if self.fs.exists(self.path) else b""
            self.fs.pipe_file(self.path, old + b"".join(self.parts))


def read_bytes(location: str) -> bytes:
    """The whole file at ``location``."""
    with open_file(location, "rb") as fh:
        return fh.read()


def write_with(location: str, writer: Callable[[IO], None]) -> None:
    """Create the file at ``location`` with ``writer(file)`` so that readers never see half of it:
    locally a temporary name then a rename; on object stores the upload completes or is absent."""
    if is_local(location):
        path = canonical(location)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as fh:
                writer(fh)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    fs, path = _fs(location)
    with fs.open(path, "wb") as fh:
        writer(fh)


def write_bytes(location: str, data: bytes) -> None:
    """Write ``data`` to ``location`` atomically (see :func:`write_with`)."""
    write_with(location, lambda fh: fh.write(data))


def glob(pattern: str) -> list[str]:
    """Locations matching ``pattern`` (same spelling as the pattern's, sorted)."""
    if is_local(pattern):
        import glob as _glob

        return sorted(_glob.glob(canonical(pattern)))
    fs, path = _fs(pattern)
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(path))


def makedirs(location: str) -> None:
    """Create the folder ``location`` (a no-op on object stores, which have no folders)."""
    if is_local(location):
        os.makedirs(canonical(location), exist_ok=True)
    else:
        fs, path = _fs(location)
        fs.makedirs(path, exist_ok=True)


def remove_tree(location: str) -> None:
    """Delete the folder ``location`` and everything under it (nothing when absent)."""
    if is_local(location):
        import shutil

        shutil.rmtree(canonical(location), ignore_errors=True)
        return
    fs, path = _fs(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def remove(location: str) -> None:
    """Delete the file ``location`` (nothing when absent)."""
    if is_local(location):
        try:
            os.remove(canonical(location))
        except FileNotFoundError:
            pass
        return
    fs, path = _fs(location)
    if fs.exists(path):
        fs.rm(path)


def tree_size(location: str) -> int:
    """Bytes of all files under the folder ``location`` (0 when absent)."""
    if is_local(location):
        total = 0
        for folder, _dirs, files in os.walk(canonical(location)):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        return total
    fs, path = _fs(location)
    return int(fs.du(path)) if fs.exists(path) else 0


def local_copy(location: str, folder: str) -> str:
    """A local path holding the file at ``location``: itself when local, else a download into
    ``folder`` (for libraries that only take local paths, e.g. MLflow artifacts)."""
    if is_local(location):
        return canonical(location)
    target = os.path.join(folder, basename(location))
    with open(target, "wb") as fh:
        fh.write(read_bytes(location))
    return target
