"""Rolling protocol on Complete Journey: frozen vs warm-started vs fully retrained models, week by week.

    PYTHONPATH=. python bench/rolling.py --warehouse /tmp/cj/warehouse [--weeks 8] [--boot 1000]
        [--tasks migration,evolution] [--max-epochs 8] [--warm-epochs 1] [--train-weeks N]
        [--warm-lr-scales 1,0.3,0.1] [--end-offset K]

Reads a featurized warehouse's gold.training_sequences (bench/real_data.py builds one). Each
sample's label week is the user's next active window after its cut-off (from
silver.user_interest_windows). For each of the last ``--weeks`` label weeks t (ending at the
pipeline's test week), every model is tested on the samples labelled in week t, after training
on the samples labelled before t (weeks <= t-2 to fit, week t-1 to stop early, as the pipeline's
train / validation split):

- frozen: trained once before the first rolling week, never updated;
- warm: last week's warm model (the frozen one at the start) continued for ``--warm-epochs`` on
  the newer data, as ``interest train --warm-start`` does (its weights move to the new ids by
  key; on this fixed-vocabulary table the mapping is the identity; the learning rate scaled by
  ``train.warm_start_lr_scale``, the weight average continuing at full decay, the starting weights
  kept unless an epoch beats them on week t-1); ``--warm-lr-scales`` runs one warm variant per
  scale beside the same frozen and full models, and ``--end-offset`` moves the weeks earlier, so
  that the scale is chosen on weeks before the ones reported;
- full: trained from scratch (same seed) on everything before t, up to ``--max-epochs`` with
  early stopping (patience 1) on week t-1.

Migration model: HR@10 / NDCG@10 of the next category; evolution model: JS divergence of the
next-window forecast. Differences (warm - full, frozen - full) pooled over the weeks with
user-clustered paired bootstrap 95% CIs, relative to the full retrain; training seconds of each
variant in the same process, as CPU seconds of the process (one torch thread: wall time on the
shared machine mostly measures the other sessions). The models train
in-process on one process (the same model classes, loss, AdamW settings, batch size and weight
average as ``interest train``), not through TorchDistributor, to keep the bench to minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

MODELS = {"migration": "migration_transformer", "evolution": "evolution_gru"}


def load(warehouse: str):
    """(arrays of every sample with ``label_week``, run sizes, item text matrix or None)."""
    from deltalake import DeltaTable

    from interest_lib import schema as S
    from interest_lib.models import SEQUENCE_COLUMNS, InputSizes
    from interest_lib.storage.arrays import read_arrays

    table = f"{warehouse}/gold/training_sequences"
    arrays = read_arrays(table, None, SEQUENCE_COLUMNS + [S.USER_ID, "window", "split"])
    wins = DeltaTable(f"{warehouse}/silver/user_interest_windows").to_pandas(columns=["user_id", "window"])
    wins = wins.drop_duplicates().sort_values(["user_id", "window"])
    per_user = {u: g["window"].to_numpy() for u, g in wins.groupby("user_id")}
    label = np.empty(len(arrays["window"]), dtype=np.int64)
    for i, (u, w) in enumerate(zip(arrays[S.USER_ID], arrays["window"])):
        ws = per_user[u]
        label[i] = ws[np.searchsorted(ws, w, side="right")]
    arrays["label_week"] = label
    vocab = DeltaTable(f"{warehouse}/ref/vocab").to_pandas()
    n = vocab.groupby("kind")["idx"].max()
    sizes = InputSizes(categories=int(n.get("category", 0)), items=int(n.get("item", 0)), texts=int(n.get("text", 0)))
    items = vocab[vocab.kind == "item"][["key", "idx"]].rename(columns={"key": "item_id"})
    if not os.path.isdir(f"{warehouse}/ref/item_embeddings/_delta_log"):
        return arrays, sizes, None  # featurized with --no-embeddings: fine for models without text
    emb = DeltaTable(f"{warehouse}/ref/item_embeddings").to_pandas(columns=["item_id", "embedding"])
    joined = items.merge(emb, on="item_id")
    text = None
    if len(joined):
        mat = np.zeros((sizes.items + 1, len(joined["embedding"].iloc[0])), np.float32)
        mat[joined["idx"].to_numpy()] = np.stack(joined["embedding"].to_numpy())
        text = (mat, np.zeros((sizes.texts + 1, mat.shape[1]), np.float32))
    return arrays, sizes, text


def _batch(arrays: dict, idx: np.ndarray, columns) -> dict:
    import torch

    return {c: torch.as_tensor(arrays[c][idx]) for c in columns}


def validation_score(model, task: str, arrays: dict, idx: np.ndarray) -> float:
    """The pipeline's early-stopping quantity: next-category cross-entropy or forecast JS."""
    from interest_lib.metrics import js_divergence, sparse_to_dense
    from interest_lib.models.inference import predict_arrays

    sub = {c: arrays[c][idx] for c in model.columns}
    out = predict_arrays(model, sub, 2048)
    if task == "migration":
        p = out["next_probs"][np.arange(len(idx)), arrays["next_category"][idx]]
        return float(-np.log(np.maximum(p, 1e-12)).mean())
    target = sparse_to_dense(arrays["next_dist_category"][idx], arrays["next_dist_share"][idx], out["forecast"].shape[1] - 1)
    return float(js_divergence(out["forecast"], target).mean())


def fit(model, task: str, arrays: dict, train_idx: np.ndarray, val_idx: np.ndarray, epochs: int, train_conf,
        patience: int = 1, seed: int = 7, warm: bool = False) -> tuple[float, int]:
    """Train in place as ``interest train`` does (AdamW, the configured batch size, clipping, the
    weight average of ``train.ema_decay``) for up to ``epochs`` with early stopping on ``val_idx``;
    keeps the best epoch's (averaged) weights. ``warm``: continue a trained model as ``--warm-start``
    does (``train.warm_start_lr_scale``, the average at full decay from the start, the starting
    weights kept unless an epoch beats them on ``val_idx``). Returns (CPU seconds of this process,
    epochs run): on a shared machine wall time mostly measures the other sessions' load."""
    import torch

    from interest_lib.training.loop import WeightAverage, sgd_step

    t = train_conf
    started, cpu = time.perf_counter(), time.process_time()
    lr = t.learning_rate * (t.warm_start_lr_scale if warm else 1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=t.weight_decay)
    average = WeightAverage(model, t.ema_decay, continuing=warm) if t.ema_decay > 0 else None
    best, best_state, bad, run = float("inf"), None, 0, 0
    if warm:
        model.eval()
        best = validation_score(model, task, arrays, val_idx)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(epochs):
        model.train()
        rng = np.random.default_rng(seed * 1000 + epoch)
        order = train_idx[rng.permutation(len(train_idx))]
        for start in range(0, len(order) - t.batch_size + 1, t.batch_size):
            batch = _batch(arrays, order[start:start + t.batch_size], model.columns)
            sgd_step(model, model, opt, batch, t.grad_clip_norm)
            if average:
                average.update(model)
        model.eval()
        run += 1
        if average:
            with average.swapped_in(model):
                score = validation_score(model, task, arrays, val_idx)
                kept = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            score = validation_score(model, task, arrays, val_idx)
            kept = {k: v.detach().clone() for k, v in model.state_dict().items()}
        print(f"    epoch {epoch + 1}: validation {score:.4f} ({time.process_time() - cpu:.0f} CPU s, "
              f"{time.perf_counter() - started:.0f} wall s)", flush=True)
        if score < best - t.min_delta:
            best, best_state, bad = score, kept, 0
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return time.process_time() - cpu, run


def outcomes(model, task: str, arrays: dict, idx: np.ndarray) -> dict:
    """Per-sample metric values on ``idx``: hr@10, ndcg@10 (migration) or js (evolution)."""
    from interest_lib.metrics import js_divergence, per_target_metrics, sparse_to_dense, target_ranks
    from interest_lib.models.inference import predict_arrays

    out = predict_arrays(model, {c: arrays[c][idx] for c in model.columns}, 2048)
    if task == "migration":
        m = per_target_metrics(target_ranks(out["next_probs"], arrays["next_category"][idx]))
        return {"hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"]}
    target = sparse_to_dense(arrays["next_dist_category"][idx], arrays["next_dist_share"][idx], out["forecast"].shape[1] - 1)
    return {"js": js_divergence(out["forecast"], target)}


def main(argv=None) -> int:
    """Run the protocol; print the per-week table and the pooled differences with CIs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--tasks", default="migration,evolution")
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--warm-epochs", type=int, default=1)
    parser.add_argument("--warm-lr-scales", default="",
                        help="comma-separated train.warm_start_lr_scale values, one warm variant each "
                             "(default: the configured one)")
    parser.add_argument("--end-offset", type=int, default=0,
                        help="end the rolling weeks this many weeks before the test week (to choose "
                             "settings on weeks before the ones reported)")
    parser.add_argument("--train-weeks", type=int, default=0,
                        help="fit on the samples of the last N label weeks before t-1 only (0: all; the "
                             "same window for every variant, to fit a slow machine)")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: on a shared 2-core machine 2 threads ran 10x slower)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    import torch

    from interest_lib.conf import load_config
    from interest_lib.evaluate.event_protocol import ClusterBootstrap
    from interest_lib.models import build_model

    torch.set_num_threads(args.threads)
    conf = load_config(overrides=args.overrides)
    start = time.perf_counter()
    arrays, sizes, text = load(args.warehouse)
    test_weeks = np.unique(arrays["label_week"][arrays["split"] == "test"])
    # The test label week holding most samples: the last, partial window has only a few.
    last = int(max(test_weeks, key=lambda w: int((arrays["label_week"] == w).sum())))
    last -= args.end_offset
    weeks = list(range(last - args.weeks + 1, last + 1))
    label = arrays["label_week"]
    print(f"gold.training_sequences: {len(label):,} samples, label weeks {label.min()}..{label.max()}; rolling weeks "
          f"{weeks[0]}..{weeks[-1]} (test rows per week: {', '.join(str(int((label == w).sum())) for w in weeks)}); "
          f"loaded in {time.perf_counter() - start:.0f}s", flush=True)

    for task in filter(None, args.tasks.split(",")):
        name = conf.train.migration_model if task == "migration" else conf.train.evolution_model
        params = getattr(conf.models, name)
        use_text = getattr(params, "use_text", False)
        if use_text and text is None:
            sys.exit(f"{name} reads item texts but {args.warehouse} has no ref.item_embeddings: "
                     "featurize it with embeddings (without --no-embeddings)")

        def fresh():
            torch.manual_seed(conf.train.seed)
            return build_model(name, params, sizes, text if use_text else None)

        def data(t):
            first = t - 1 - args.train_weeks if args.train_weeks else label.min()
            return np.flatnonzero((label <= t - 2) & (label >= first)), np.flatnonzero(label == t - 1)

        frozen = fresh()
        secs, n = fit(frozen, task, arrays, *data(weeks[0]), args.max_epochs, conf.train)
        print(f"[{task} {name}] frozen model: {n} epochs in {secs:.0f}s on label weeks "
              f"{label[data(weeks[0])[0]].min()}..{weeks[0] - 2}", flush=True)
        scales = [float(x) for x in args.warm_lr_scales.split(",") if x] or [conf.train.warm_start_lr_scale]
        warm_confs = {("warm" if len(scales) == 1 else f"warm@{x:g}"):
                      dataclasses.replace(conf.train, warm_start_lr_scale=x) for x in scales}
        warms = {}
        for variant in warm_confs:
            warms[variant] = fresh()
            warms[variant].load_state_dict(frozen.state_dict())
            warms[variant].eval()  # until its first fit: the frozen model itself (no dropout at test time)
        variants = ["frozen", *warms, "full"]
        compared = [*warms, "frozen"]
        per_week, pooled, users = [], {v: {} for v in variants}, []
        for t in weeks:
            tr, va = data(t)
            warm_s = {}
            if t == weeks[0]:
                full, full_s, full_n = frozen, secs, n
                warm_s = dict.fromkeys(warms, 0.0)
            else:
                full = fresh()
                full_s, full_n = fit(full, task, arrays, tr, va, args.max_epochs, conf.train)
                for variant, warm in warms.items():
                    warm_s[variant], _ = fit(warm, task, arrays, tr, va, args.warm_epochs, warm_confs[variant],
                                             patience=99, seed=conf.train.seed + t, warm=True)
            test = np.flatnonzero(label == t)
            row = {"week": t, "rows": len(test), "full_s": full_s, "full_epochs": full_n,
                   **{f"{v}_s": warm_s[v] for v in warms}}
            for variant, model in (("frozen", frozen), *warms.items(), ("full", full)):
                vals = outcomes(model, task, arrays, test)
                for metric, v in vals.items():
                    row[f"{variant}:{metric}"] = float(v.mean())
                    pooled[variant].setdefault(metric, []).append(v)
            users.append(arrays["user_id"][test])
            per_week.append(row)
            metrics = [k for k in row if ":" in k]
            print(f"[{task}] week {t}: " + ", ".join(f"{k} {row[k]:.4f}" for k in metrics)
                  + f"; full {full_n} epochs {full_s:.0f} CPU s, "
                  + ", ".join(f"{v} {warm_s[v]:.0f} CPU s" for v in warms), flush=True)

        metric_names = list(pooled["full"])
        print(f"\n{task} ({name}), per week (tested on the samples labelled in that week):")
        head = "".join(f"{v + ' ' + m:>18}" for m in metric_names for v in variants)
        print(f"{'week':>6}{'rows':>6}{head}{'full CPU s':>11}" + "".join(f"{v + ' CPU s':>16}" for v in warms))
        for r in per_week:
            cells = "".join(f"{r[f'{v}:{m}']:>18.4f}" for m in metric_names for v in variants)
            print(f"{r['week']:>6}{r['rows']:>6}{cells}{r['full_s']:>11.0f}"
                  + "".join(f"{r[v + '_s']:>16.0f}" for v in warms))
        clusters = np.concatenate(users[1:])  # week 1: the three variants are the same model
        boot = ClusterBootstrap.draw(clusters, args.boot)
        print(f"pooled over weeks {weeks[1]}..{weeks[-1]} ({len(clusters):,} samples, user-clustered 95% CIs, "
              "relative to the full retrain):")
        for metric in metric_names:
            full_v = np.concatenate(pooled["full"][metric][1:])
            base = full_v.mean()
            for variant in compared:
                v = np.concatenate(pooled[variant][metric][1:])
                d, lo, hi = boot.ci(v, full_v)
                print(f"  {metric:<8} {variant:<7} {v.mean():.4f} vs full {base:.4f}: {d / base:+.2%} "
                      f"[{lo / base:+.2%}, {hi / base:+.2%}]")
        # The frozen model's decline: its gap to the full retrain, first half of the weeks vs second.
        half = len(weeks) // 2
        for metric in metric_names:
            gaps = [pooled["frozen"][metric][i] - pooled["full"][metric][i] for i in range(1, len(weeks))]
            early, late = np.concatenate(gaps[:half - 1] or gaps[:1]), np.concatenate(gaps[half - 1:])
            print(f"  frozen - full {metric}: weeks {weeks[1]}..{weeks[half - 1]} mean {early.mean():+.4f}, "
                  f"weeks {weeks[half]}..{weeks[-1]} mean {late.mean():+.4f}")
        full_s = sum(r["full_s"] for r in per_week[1:])
        for variant in warms:
            warm_s = sum(r[variant + "_s"] for r in per_week[1:])
            print(f"  training CPU time over weeks {weeks[1]}..{weeks[-1]}: {variant} {warm_s:.0f} s vs full "
                  f"{full_s:.0f} s = {warm_s / max(full_s, 1e-9):.0%} (same process, one thread)", flush=True)
    print(f"\nseconds: {time.perf_counter() - start:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
