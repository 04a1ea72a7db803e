"""spark-submit entry point: `spark-submit jobs/score.py [--env cluster] [--set k=v ...]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
