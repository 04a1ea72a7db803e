"""spark-submit entry point for the whole pipeline: `spark-submit jobs/run.py [--env cluster]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
