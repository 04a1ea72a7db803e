"""spark-submit entry point: `spark-submit jobs/stream.py [--env cluster] [--trigger available_now] [--set k=v ...]`."""

import sys

from interest_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
