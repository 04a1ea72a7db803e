"""Entry point of the run report: `python jobs/report.py [--run reports/<run>] [--out page.html]` (no Spark)."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
