"""Headless Chromium for tests that look at a page as a person would: Debian's ``chromium`` and
``chromedriver`` (scripts/bootstrap.sh installs them), driven by selenium; each browser gets its own
profile folder and is quit (its processes ended) when the block ends, even on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import Iterator

CHROMIUM = os.environ.get("INTEREST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("INTEREST_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing_browser() -> str:
    """Why no headless browser can start here ("" when one can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) or shutil.which(path)):
            return (f"{path} not found: the report's browser test needs Debian's chromium and chromium-driver "
                    "(scripts/bootstrap.sh installs them with apt-get)")
    return ""


@contextlib.contextmanager
def headless_chromium(profile_dir: str, width: int = 1280, height: int = 3000) -> Iterator:
    """A selenium Chrome driver on headless Chromium that records the browser console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    problem = missing_browser()
    if problem:
        raise RuntimeError(problem)
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--window-size={width},{height}", f"--user-data-dir={profile_dir}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=os.path.join(profile_dir, "chromedriver.log")),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 90.0, every: float = 0.2):
    """Poll ``return <script>`` until it is truthy; its value (AssertionError after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"the page never satisfied {script!r} within {timeout:.0f} s")
