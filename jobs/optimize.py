"""spark-submit entry point: `spark-submit jobs/optimize.py [--env cluster] [--set k=v ...]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["optimize", *sys.argv[1:]]))
