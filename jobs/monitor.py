"""Entry point of drift monitoring: `python jobs/monitor.py [--set monitor.weeks=3]` (no Spark; exit 1 = retrain)."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["monitor", *sys.argv[1:]]))
