"""Transfer on Complete Journey: a model pretrained on a source catalogue and fine-tuned on a
target with few users, against the same model trained on those few users alone (issue 16).

    PYTHONPATH=. python bench/transfer.py [--work /tmp/cj_transfer] [--fraction 0.1] [--seeds 3]
        [--experiments departments,generated] [--target-departments 'A,B'] [--max-epochs 8] [--reference] [--reuse]
        [--model migration_transformer] [--boot 1000] [--fine-tune full,warm,lr0.3] [--set KEY=VALUE ...]

Experiments (the target is the same in both):

- ``departments``: Complete Journey's departments ranked by purchase lines; every second one from
  the second (DRUG GM, MEAT-PCKGD, DELI, NUTRITION, ...) is held out as the target, a rule fixed
  before any result was seen (``--target-departments`` overrides it). Source: the other
  departments' categories, over the households not chosen as the few; target: the held-out
  departments' categories over every household.
- ``generated``: the generated store (the embedded default's data, ``generate`` settings of the
  conf) as the source.

The few users are ``--fraction`` of the target's households, drawn with a fixed seed. Each store
is built by the pipeline's own steps (ingest, sessionize, featurize) under ``--work``. Models
train in-process (``bench/rolling.fit``: AdamW, the configured batch size, early stopping with
patience 1 on the validation split, up to ``--max-epochs``): the source model on its train
split; *target only*: a fresh model on the few users' train split, stopping on their validation
split; *fine-tuned*: the same, starting from the source model's weights, each target category's
rows taken from the source category whose name and path read closest (MiniLM,
``interest_lib.training.transfer``, as ``interest train --transfer-from`` does). Both are tested
on the target's test split: every household (the few users' own test samples as a second
slice). Per-sample HR@10 / NDCG@10 averaged over ``--seeds`` seeds, then the fine-tuned minus
target-only difference with a user-clustered paired bootstrap 95% CI. ``--reference`` adds the
same model trained on every household's train split: what all the target's data buys over the
few users (the size of the gap a transfer could close).

``--fine-tune`` lists how the pretrained model is fine-tuned: ``full`` (the schedule a fresh model
gets: the full learning rate, the weight average warming up), ``warm`` (as ``--warm-start``
refines a run: ``train.warm_start_lr_scale`` of the learning rate, the starting weights validated
first and kept unless an epoch beats them, the average at full decay), ``lrX`` (the full schedule
at X times the learning rate). With more than one, the choice is made on the *validation* week of
the households that are not among the few (samples no model trained or stopped on), printed as
its own slice, never on the test week.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)


def held_out_departments(tx, products) -> list[str]:
    """Every second department by purchase lines, from the second: the target departments."""
    from interest_lib.datasets.complete_journey import category_departments, purchase_lines

    lines = purchase_lines(tx, products)
    ranked = lines["category_id"].map(category_departments(tx, products)).value_counts()
    ranked = ranked.sort_values(ascending=False, kind="mergesort")
    return list(ranked.index[1::2])


def build_store(spark, work: str, name: str, overrides: list[str], write_raw=None, reuse: bool = False):
    """Raw store (``write_raw(raw_dir)``, or ``generate`` when None) -> ingest, sessionize,
    featurize into ``<work>/<name>/warehouse``; returns (tables, seconds). ``reuse``: keep a
    store an earlier run finished (its ``built`` marker) instead of rebuilding it."""
    from interest_lib.conf import load_config
    from interest_lib.features.job import run_featurize
    from interest_lib.generate.job import run_generate
    from interest_lib.ingest import run_ingest
    from interest_lib.sessions import run_sessionize
    from interest_lib.storage import Tables

    root = os.path.join(work, name)
    conf = load_config(overrides=[f"storage.raw_dir={root}/raw", f"storage.warehouse={root}/warehouse",
                                  "report.enabled=false", *overrides])
    tables = Tables(spark, conf.storage)
    marker = os.path.join(root, "built")
    if reuse and os.path.exists(marker):
        print(f"[{name}] reusing the store at {root}", flush=True)
        return tables, float(open(marker).read())
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    if write_raw is None:
        run_generate(spark, conf, tables)
    else:
        write_raw(conf.storage.raw_dir)
    run_ingest(spark, conf, tables)
    run_sessionize(spark, conf, tables)
    run_featurize(spark, conf, tables)
    seconds = time.perf_counter() - started
    with open(marker, "w") as fh:
        fh.write(f"{seconds:.1f}")
    print(f"[{name}] store built in {seconds:.0f} s: {conf.storage.warehouse}", flush=True)
    return tables, seconds


def store_inputs(tables) -> dict:
    """Everything the models need of a featurized warehouse: arrays, sizes, text, vocab, texts."""
    from rolling import load

    from interest_lib.training.transfer import category_texts
    from interest_lib.training.warm_start import vocab_lists

    arrays, sizes, text = load(tables.conf.warehouse)
    vocab = vocab_lists(tables)
    return {"arrays": arrays, "sizes": sizes, "text": text, "vocab": vocab,
            "texts": category_texts(tables, vocab["category"])}


def make_model(name: str, params, store: dict, seed: int):
    """A fresh model of ``name`` sized for ``store`` (seeded)."""
    import torch

    from interest_lib.models import build_model

    torch.manual_seed(seed)
    return build_model(name, params, store["sizes"], store["text"] if getattr(params, "use_text", False) else None)


def transferred(source_model, source: dict, target: dict, name: str, params, seed: int, encoder):
    """A target model starting from the source model's weights, categories aligned by text."""
    from interest_lib.training.transfer import plan_transfer
    from interest_lib.training.warm_start import remap_state

    model = make_model(name, params, target, seed)
    plan, alignment = plan_transfer(source["vocab"], source["texts"], target["vocab"], target["texts"], encoder)
    state = remap_state(source_model.state_dict(), model.state_dict(), dataclasses.asdict(source["sizes"]), plan)
    model.load_state_dict(state)
    return model, alignment


def fine_tune_schedule(variant: str) -> tuple[float, bool]:
    """(learning-rate scale, warm) of a ``--fine-tune`` entry: ``full``, ``warm`` or ``lrX``."""
    if variant in ("full", "warm"):
        return 1.0, variant == "warm"
    try:
        if variant.startswith("lr"):
            return float(variant[2:]), False
    except ValueError:
        pass
    raise SystemExit(f"--fine-tune: unknown variant {variant!r} (full, warm, lrX with X a number)")


def main(argv=None) -> int:
    """Build the stores, train, print the transfer table with CIs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/cj_transfer")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of the target's households that train")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--experiments", default="departments,generated")
    parser.add_argument("--target-departments", help="comma-separated (default: every second by size)")
    parser.add_argument("--model", default="migration_transformer")
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--fine-tune", default="full", help="comma-separated: full, warm, lrX (see the docstring)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--households", type=int, help="only the first N households (a quick smoke run)")
    parser.add_argument("--reuse", action="store_true", help="reuse the stores an earlier run built under --work")
    parser.add_argument("--reference", action="store_true",
                        help="also train on every household's train split (one seed): what all the target's "
                             "data buys over the few users, a reference for the transfer's gain")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.fine_tune.split(",") if v.strip()]
    if not variants:
        raise SystemExit("--fine-tune: name at least one of full, warm, lrX")
    for variant in variants:
        fine_tune_schedule(variant)  # a typo stops here, before any store is built

    import torch

    from rolling import fit, outcomes

    from interest_lib.conf import load_config
    from interest_lib.datasets.complete_journey import (category_departments, load_complete_journey,
                                                        write_complete_journey)
    from interest_lib.evaluate.event_protocol import ClusterBootstrap
    from interest_lib.features.embeddings import get_encoder
    from interest_lib.logs import setup_logging
    from interest_lib.pseudonymise import pseudonymise_py, resolve_key
    from interest_lib.spark import get_spark

    setup_logging("WARNING")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    base = load_config(overrides=["spark.extra.spark.ui.showConsoleProgress=false", *args.overrides])
    params, task = getattr(base.models, args.model), "migration"
    spark = get_spark(base)
    encoder = get_encoder(base.embeddings)

    tx, products = load_complete_journey(args.households)
    target_deps = ([d.strip() for d in args.target_departments.split(",")] if args.target_departments
                   else held_out_departments(tx, products))
    all_deps = sorted(set(category_departments(tx, products)))
    source_deps = [d for d in all_deps if d not in target_deps]
    households = np.sort(tx["household_id"].unique())
    rng = np.random.default_rng(20261202)
    few = np.sort(rng.choice(households, size=max(1, round(args.fraction * len(households))), replace=False))
    rest = np.setdiff1d(households, few)
    print(f"target departments {target_deps}; source departments {source_deps}; few users: {len(few)} of "
          f"{len(households)} households", flush=True)

    target_tables, target_s = build_store(spark, args.work, "target", args.overrides, lambda raw: write_complete_journey(
        raw, args.households, departments=target_deps), args.reuse)
    target = store_inputs(target_tables)
    key = resolve_key(base)
    few_users = {pseudonymise_py(str(h), key) for h in few}
    arr = target["arrays"]
    is_few = np.array([u in few_users for u in arr["user_id"]])
    split = arr["split"]
    train_idx, val_idx = np.flatnonzero(is_few & (split == "train")), np.flatnonzero(is_few & (split == "validation"))
    slices = {"all households": np.flatnonzero(split == "test"), "the few users": np.flatnonzero(is_few & (split == "test"))}
    if len(variants) > 1:  # the choice among them is made here, never on the test week
        slices["validation, others"] = np.flatnonzero(~is_few & (split == "validation"))
    print(f"target: {len(arr['split']):,} samples, {target['sizes'].categories} categories; the few users' train "
          f"{len(train_idx):,}, validation {len(val_idx):,}; test {len(slices['all households']):,} "
          f"({len(slices['the few users']):,} of the few)", flush=True)

    sources = {}
    if "departments" in args.experiments:
        t, s = build_store(spark, args.work, "source_departments", args.overrides, lambda raw: write_complete_journey(
            raw, args.households, departments=source_deps, household_ids=rest), args.reuse)
        sources["departments"] = (store_inputs(t), s)
    if "generated" in args.experiments:
        t, s = build_store(spark, args.work, "source_generated", args.overrides, reuse=args.reuse)
        sources["generated"] = (store_inputs(t), s)
    spark.stop()

    def run_fit(model, data, tr, va, seed, variant="full"):
        lr_scale, warm = fine_tune_schedule(variant)
        train_conf = dataclasses.replace(base.train, learning_rate=base.train.learning_rate * lr_scale)
        return fit(model, task, data["arrays"], tr, va, args.max_epochs, train_conf, seed=seed, warm=warm)

    def fine_tuned(exp, variant):
        return f"fine-tuned ({exp})" if len(variants) == 1 else f"fine-tuned ({exp}, {variant})"

    results = {}
    for seed in range(args.seeds):
        own = make_model(args.model, params, target, seed)
        secs, n = run_fit(own, target, train_idx, val_idx, seed)
        print(f"[target only, seed {seed}] {n} epochs, {secs:.0f} CPU s", flush=True)
        for sl, idx in slices.items():
            results.setdefault(("target only", sl), []).append(outcomes(own, task, arr, idx))
    if args.reference:
        full = make_model(args.model, params, target, base.train.seed)
        secs, n = run_fit(full, target, np.flatnonzero(split == "train"), np.flatnonzero(split == "validation"),
                          base.train.seed)
        print(f"[target, every household (reference)] {n} epochs, {secs:.0f} CPU s", flush=True)
        for sl, idx in slices.items():
            results.setdefault(("all households (1 seed)", sl), []).append(outcomes(full, task, arr, idx))
    for exp, (source, build_s) in sources.items():
        sa = source["arrays"]
        src_model = make_model(args.model, params, source, base.train.seed)
        secs, n = run_fit(src_model, source, np.flatnonzero(sa["split"] == "train"),
                          np.flatnonzero(sa["split"] == "validation"), base.train.seed)
        print(f"[source {exp}] {len(sa['split']):,} samples, {source['sizes'].categories} categories; "
              f"{n} epochs, {secs:.0f} CPU s (store built in {build_s:.0f} s)", flush=True)
        for seed in range(args.seeds):
            model, alignment = transferred(src_model, source, target, args.model, params, seed, encoder)
            if seed == 0:
                pairs = sorted(alignment.pairs.items(), key=lambda kv: -kv[1][1])
                print(f"  alignment ({len(pairs)} target categories; median cosine "
                      f"{np.median([c for _, (_, c) in pairs]):.2f}); e.g. "
                      + "; ".join(f"{t} -> {s} ({c:.2f})" for t, (s, c) in pairs[::max(1, len(pairs) // 6)]), flush=True)
            start = {k: v.detach().clone() for k, v in model.state_dict().items()}
            for variant in variants:
                model.load_state_dict(start)
                secs, n = run_fit(model, target, train_idx, val_idx, seed, variant)
                print(f"[fine-tuned from {exp} ({variant}), seed {seed}] {n} epochs, {secs:.0f} CPU s", flush=True)
                for sl, idx in slices.items():
                    results.setdefault((fine_tuned(exp, variant), sl), []).append(outcomes(model, task, arr, idx))

    print(f"\nTransfer, {args.model}, target = Complete Journey departments {', '.join(target_deps)}; "
          f"{len(few)} households ({args.fraction:.0%}) train; per-sample metrics averaged over {args.seeds} seeds; "
          "user-clustered paired bootstrap 95% CIs vs target only")
    sw = max(len("test slice"), *map(len, slices)) + 2
    mw = max(len(n) for n, _ in results) + 2
    print(f"{'test slice':<{sw}}{'model':<{mw}}{'samples':>8}{'HR@10':>8}{'NDCG@10':>9}  NDCG@10 gain [95% CI]")
    for sl, idx in slices.items():
        boot = ClusterBootstrap.draw(arr["user_id"][idx], args.boot)
        own = {m: np.mean([r[m] for r in results[("target only", sl)]], axis=0) for m in ("hr@10", "ndcg@10")}
        names = ["target only"] + [fine_tuned(e, v) for e in sources for v in variants]
        for name in names + (["all households (1 seed)"] if args.reference else []):
            vals = {m: np.mean([r[m] for r in results[(name, sl)]], axis=0) for m in ("hr@10", "ndcg@10")}
            gain = ""
            if name != "target only":
                d, lo, hi = boot.ci(vals["ndcg@10"], own["ndcg@10"])
                b = own["ndcg@10"].mean()
                gain = f"{d / b:+.1%} [{lo / b:+.1%}, {hi / b:+.1%}]"
            print(f"{sl:<{sw}}{name:<{mw}}{len(idx):>8,}{vals['hr@10'].mean():>8.4f}{vals['ndcg@10'].mean():>9.4f}  {gain}")
    if len(variants) > 1:
        val = slices["validation, others"]
        for e in sources:
            score = {v: np.mean([r["ndcg@10"] for r in results[(fine_tuned(e, v), "validation, others")]], axis=0).mean()
                     for v in variants}
            print(f"chosen on the validation week of the other households ({len(val):,} samples), {e}: "
                  f"{max(score, key=score.get)} (NDCG@10 " + ", ".join(f"{v} {x:.4f}" for v, x in score.items()) + ")")
    print(f"\nseconds: {time.perf_counter() - started:.0f} (target store {target_s:.0f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
