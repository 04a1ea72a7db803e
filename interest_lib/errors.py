"""Errors about input a job cannot use; the ``interest`` command prints them without a traceback.

Each message names the file, column, table or setting at fault and what to do about it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input a job cannot use; the ``interest`` command exits with status 3 and the message."""


class EmptyInputError(InputError):
    """A job's input table exists but holds no rows (e.g. ingest accepted nothing)."""


class SecretError(RuntimeError):
    """The pseudonymisation key is missing, public, or comes from a place it must not; the
    ``interest`` command exits with status 2 (a configuration error) and the message."""
