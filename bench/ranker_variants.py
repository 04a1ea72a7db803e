"""Learned-ranker variants on Complete Journey's validation period, fast: the features are
recorded once, then each variant only trains and scores (docs/event_protocol.md, "Directions
measured on the validation period").

    .venv/bin/python bench/ranker_variants.py [--cache /tmp/ranker_cache] \\
        base "switch 1.3:switch_weight=1.3" "gate:repeat_gate=1" "cf:extra=itemcos+gcn+svd" \\
        "dept:extra=dept" "in-sample:insample=1,hidden=128"

Each variant is ``label:key=value,...`` with RankerParams fields plus ``extra`` (collaborative
features appended to the recorded ones: ``itemcos`` item-item cosine over the user-category
graph, ``gcn`` its LightGCN-normalised 2-hop propagation, ``svd`` a rank-32 SVD of the log counts,
all fitted on the events before the ranker's internal cut, and ``dept`` "same department" from
Complete Journey's one path per category; each as the user's day-decayed profile times the
category similarity, e.g. the share of the user's purchases in the candidate's department),
``insample=1`` (train on the validation period itself: not a ceiling, since a network fitted long
enough memorises the scored households' answers) and ``crossfit=1`` (train on the validation
period's answers of one half of the households, by the parity of the user index, and score the
other half with it, both ways: what the period teaches without the scored household's own
answers). Printed: NDCG@10 per slice and the gain vs TIFU-KNN (the best baseline on validation)
and vs the first variant, with user-clustered bootstrap CIs (200).

The records are those :meth:`LearnedRanker.fit` makes at the validation cut: states built at the
internal cut, the rest of the history up to the validation cut replayed for training, the
validation period streamed after it. Nothing after the test cut is read.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from interest_lib.evaluate.cj_events import load_complete_journey_events  # noqa: E402
from interest_lib.evaluate.event_benchmark import ranker_params, validation_cut  # noqa: E402
from interest_lib.evaluate.event_protocol import (  # noqa: E402
    ClusterBootstrap, encode_events, evaluate_model, make_targets, target_ranks_of, time_cut,
)
from interest_lib.event_stream import score_targets  # noqa: E402
from interest_lib.metrics import per_target_metrics  # noqa: E402
from interest_lib.models.event_baselines import TifuKnn  # noqa: E402
from interest_lib.models.event_ranker import FEATURES, FeatureState, LearnedRanker, RankerParams  # noqa: E402

# TIFU-KNN as the protocol chooses it on Complete Journey's validation period (docs/event_protocol.md)
TIFU = dict(decay=0.995, unit="day", binary=False, prior=0.2, k=300, alpha=0.9)


class _Writer:
    """Streams a period through a FeatureState, writing each scored basket's features to ``out``."""

    def __init__(self, state, out, refit):
        self.state, self.out, self.i, self.refit = state, out, 0, refit

    def fit(self, log, n):
        if self.refit:
            self.state.fit(log, n)
        return self

    def scores(self, users, now):
        f = self.state.features(users, now)
        self.out[self.i:self.i + len(f)] = f
        self.i += len(f)
        return np.zeros((len(users), self.state.width))

    def observe(self, users, categories, now):
        self.state.observe(users, categories, now)


def record(log, params: RankerParams, cache: str):
    """Targets of the replay and of the validation period; features written under ``cache``."""
    cut = time_cut(log.ts)
    vcut = validation_cut(log, cut)
    t1 = time_cut(log.ts[:log.upto(vcut)], params.train_quantile)
    train, val = make_targets(log, t1, end=vcut), make_targets(log, vcut, end=cut)
    os.makedirs(cache, exist_ok=True)
    state = FeatureState(tifu_k=params.tifu_k, hour_habit=params.hour_habit)
    W, F = log.num_categories + 1, len(state.names)
    tag = f"q{params.train_quantile}_k{params.tifu_k}_h{int(params.hour_habit)}"
    paths = {k: os.path.join(cache, f"{k}_{tag}.npy") for k in ("train", "val", "tifu")}
    if not all(os.path.exists(p) for p in paths.values()):
        for key, targets, refit in (("train", train, True), ("val", val, False)):
            out = np.lib.format.open_memmap(paths[key] + ".part", mode="w+", dtype=np.float32,
                                            shape=(len(targets.basket_ts), W, F))
            score_targets(_Writer(state, out, refit), log, targets)
            out.flush()
            del out
            os.replace(paths[key] + ".part", paths[key])
        np.save(paths["tifu"], evaluate_model(TifuKnn(**TIFU), log, val))
    load = lambda k: np.load(paths[k], mmap_mode="r")  # noqa: E731
    return train, val, load("train"), load("val"), np.load(paths["tifu"]), t1


def collaborative(log, n: int, names, rank: int = 32) -> dict[str, np.ndarray]:
    """``[C+1, C+1]`` category similarities from the first ``n`` events' user-category graph."""
    M = np.zeros((log.num_users, log.num_categories + 1))
    np.add.at(M, (log.user[:n], log.category[:n]), 1.0)
    B = (M > 0).astype(np.float64)
    out = {}
    if "itemcos" in names:
        G = B.T @ B
        d = np.sqrt(np.maximum(np.diag(G), 1.0))
        out["itemcos"] = G / d[:, None] / d[None, :]
    if "gcn" in names:
        di = np.sqrt(np.maximum(B.sum(0), 1.0))
        out["gcn"] = (B / di).T @ ((B / di) / np.maximum(B.sum(1), 1.0)[:, None])
    if "svd" in names:
        L = np.log1p(M)
        L /= np.maximum(np.linalg.norm(L, axis=1, keepdims=True), 1e-9)
        _, s, vt = np.linalg.svd(L, full_matrices=False)
        V = vt[:rank].T * s[:rank]
        out["svd"] = V @ V.T
    if "dept" in names:
        from interest_lib.datasets.complete_journey import category_paths, load_complete_journey, purchase_lines

        paths = category_paths(purchase_lines(*load_complete_journey()))
        dept = np.array([""] + [str(paths.get(c, "?")).split("/")[0] for c in log.categories])
        out["dept"] = ((dept[:, None] == dept[None, :]) & (dept[:, None] != "")).astype(np.float64)
    for name in ("itemcos", "gcn"):
        if name in out:
            np.fill_diagonal(out[name], 0.0)  # the category itself is the repeat features' job
    return out


def with_extra(X, sims: dict[str, np.ndarray], chunk: int = 4096) -> np.ndarray:
    """``X`` with one column per similarity: the user's day-decayed profile times it."""
    if not sims:
        return np.asarray(X)
    share_col = FEATURES.index("share_d995")
    parts = []
    for lo in range(0, len(X), chunk):
        x = np.asarray(X[lo:lo + chunk])
        share = np.expm1(x[:, :, share_col].astype(np.float64)) / 100.0  # the feature is log1p(100 * share)
        cols = [share @ S if name == "svd" else np.log1p(100 * (share @ S)) for name, S in sims.items()]
        parts.append(np.concatenate([x, np.stack(cols, axis=-1).astype(np.float32)], axis=-1))
    return np.concatenate(parts)


def parse_variant(text: str):
    """(label, RankerParams, extra similarities, insample, crossfit) of ``label:key=value,...``."""
    label, _, spec = text.partition(":")
    extra, insample, crossfit, settings = [], False, False, []
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key == "extra":
            extra = value.split("+")
        elif key == "insample":
            insample = bool(int(value))
        elif key == "crossfit":
            crossfit = bool(int(value))
        else:
            settings.append(item)
    return label, ranker_params(",".join(settings)), extra, insample, crossfit


def crossfit_scores(ranker, X, Y, val, torch) -> np.ndarray:
    """Scores of every validation basket from a network trained on the validation period's own
    answers of the *other* half of the households (users split by the parity of their index):
    what the period itself teaches, without the scored household's answers."""
    fold = np.asarray(val.basket_user) % 2
    scores = None
    for f in (0, 1):
        ranker._train(X[fold != f], Y[fold != f], torch, ranker.params.category_identity)
        part = ranker._predict(X[fold == f])
        if scores is None:
            scores = np.zeros((len(X), part.shape[1]), dtype=part.dtype)
        scores[fold == f] = part
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="label:key=value,... (the first is the reference)")
    parser.add_argument("--cache", default="/tmp/ranker_cache", help="folder of the recorded features")
    parser.add_argument("--boot", type=int, default=200)
    args = parser.parse_args(argv)
    log = encode_events(load_complete_journey_events())
    per_target, first = {}, None
    for text in args.variants:
        label, params, extra, insample, crossfit = parse_variant(text)
        start = time.perf_counter()
        train, val, Xtr, Xva, tifu, t1 = record(log, params, args.cache)
        sims = collaborative(log, log.upto(t1), extra)
        Xva = with_extra(Xva, sims)
        src, X = (val, Xva) if insample or crossfit else (train, with_extra(Xtr, sims))
        ranker = LearnedRanker(params, log_line=lambda s: None)
        ranker.num_users, ranker.num_categories, ranker.width = log.num_users, log.num_categories, log.num_categories + 1
        Y = ranker._target_weights(src, ranker.switch_weight)
        import torch

        if params.threads:
            torch.set_num_threads(params.threads)
        if crossfit:
            ranks = target_ranks_of(crossfit_scores(ranker, X, Y, val, torch), val)
        else:
            ranker._train(X, Y, torch, params.category_identity)
            ranks = target_ranks_of(ranker._predict(Xva), val)
        per_target[label] = per_target_metrics(ranks, (10,))["ndcg@10"]
        refs = {"tifu_knn": per_target_metrics(tifu, (10,))["ndcg@10"]}
        if first is not None:
            refs[first] = per_target[first]
        first = first or label
        print(f"{label} ({params}, extra={extra}, insample={insample}, crossfit={crossfit}; "
              f"{time.perf_counter() - start:.0f}s)")
        for sl in ("all", "switch", "new"):
            mask = val.slice_mask(sl)
            boot = ClusterBootstrap.draw(val.user[mask], args.boot, 0)
            line = f"  [{sl}] ndcg@10 {per_target[label][mask].mean():.4f}"
            for name, ref in refs.items():
                d, lo, hi = boot.ci(per_target[label][mask], ref[mask])
                r = ref[mask].mean()
                line += f" | vs {name} {100 * d / r:+.1f}% [{100 * lo / r:+.1f}, {100 * hi / r:+.1f}]"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
