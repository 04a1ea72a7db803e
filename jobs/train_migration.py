"""spark-submit entry point: `spark-submit jobs/train_migration.py [--env cluster] [--set k=v ...]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--model", "migration", *sys.argv[1:]]))
