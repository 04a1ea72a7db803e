"""spark-submit entry point: `spark-submit jobs/train_evolution.py [--env cluster] [--set k=v ...]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--model", "evolution", *sys.argv[1:]]))
