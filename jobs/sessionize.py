"""spark-submit entry point: `spark-submit jobs/sessionize.py [--env cluster] [--set k=v ...]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["sessionize", *sys.argv[1:]]))
