"""The design card's path, for real: Petastorm feeds Horovod (2 gloo ranks launched by
``horovod.spark.run``), beside the default path (native Delta feed + TorchDistributor DDP).

What is checked, on one small generated store (same seed, same data for every run):

1. The Petastorm feed delivers exactly the native feed's rows, with the same tensor dtypes and
   shapes, sharded by Petastorm (``cur_shard`` / ``shard_count``) into equal steps per rank, and
   deterministically for a given (seed, epoch, rank); its cache folder is removed.
2. The Horovod backend is numerically the TorchDistributor backend: fed the same batches (native
   feed), it trains the same weights (see ``horovod_backend``: gradients are averaged before the
   loop's clipping, and a two-rank average is bitwise the same either way).
3. So the only difference left on the card path is the *order* in which Petastorm's sharding and
   shuffling present the same rows. Its models must land within that order's noise of the default
   path (tolerances below) and beat the Markov baseline like the default models do.
"""

from __future__ import annotations

import copy
import os
from typing import NamedTuple

import numpy as np
import pytest
import torch

from interest_lib.storage.catalog import GOLD_TRAINING_SEQUENCES
from interest_lib.training.feed import FeedSpec, make_feed
from interest_lib.training.store import RunStore, load_record

pytestmark = pytest.mark.card

# Tolerances, card path (Horovod + Petastorm) vs default path (TorchDistributor + native feed).
# Test 2 pins the backend to the default's numerics (same weights to 1e-4), so the gap comes only
# from the row order (Petastorm's i % world row-group sharding and its ventilator's row-group order
# vs the native feed's size-balanced sharding), i.e. the models' sensitivity to the SGD sample
# order: 3 epochs on ~1.5k rows. Both paths are deterministic (same seed, same data -> same
# numbers on every run), so the gap is a fixed quantity, not CI noise: measured here 0.020 NDCG@10
# (0.707 card vs 0.688 default) and 1.5 % of the forecast JS (0.1096 vs 0.1114). The bounds leave
# ~50 % headroom for other CPUs / BLAS builds and stay far below the models' margin over the Markov
# baseline (+0.10 NDCG@10, -0.28 JS), so a real defect of the card path (lost or repeated rows,
# unsynchronised gradients, a rank on stale weights) still fails.
NDCG_TOL = 0.03
JS_REL_TOL = 0.15


class TrainedPath(NamedTuple):
    """One training path's conf (backend, feed, run store) and its runs by task."""

    conf: object
    runs: dict


def _variant(conf, store, backend: str, feed: str):
    conf = copy.deepcopy(conf)
    conf.train.backend, conf.train.feed, conf.train.store = backend, feed, str(store)
    return conf


def _train(spark, conf, tables, models) -> dict[str, RunStore]:
    from interest_lib.training.job import run_train

    runs = {}
    for model in models:
        report = run_train(spark, conf, tables, model_name=model)
        record = load_record(os.path.join(report.store, "model.pt"))
        runs[record["task"]] = RunStore(report.store)
    return runs


@pytest.fixture(scope="module")
def trained(card_data, spark, tmp_path_factory):
    """Both models on the default and the card path; the migration model on Horovod + native feed.

    name -> :class:`TrainedPath`."""
    conf, tables = card_data
    root = tmp_path_factory.mktemp("card-runs")
    models = [conf.train.migration_model, conf.train.evolution_model]
    variants = {"default": ("torch_distributor", "delta", models), "card": ("horovod", "petastorm", models),
                "horovod_delta": ("horovod", "delta", models[:1])}
    out = {}
    for name, (backend, feed, names) in variants.items():
        path_conf = _variant(conf, root / name, backend, feed)
        out[name] = TrainedPath(path_conf, _train(spark, path_conf, tables, names))
    return out


def _spec(tables, columns, split, **kw):
    path = tables.path(GOLD_TRAINING_SEQUENCES)
    return FeedSpec(table_path=path, version=tables.version(GOLD_TRAINING_SEQUENCES), split=split,
                    columns=columns, **kw)


def _collect(feed, world, epoch=0):
    """Every rank's batches concatenated per column (numpy), plus the batches per rank."""
    per_rank = [list(feed.batches(rank, world, epoch)) for rank in range(world)]
    cols = {}
    for batches in per_rank:
        for batch in batches:
            for k, v in batch.items():
                cols.setdefault(k, []).append(v.numpy() if hasattr(v, "numpy") else np.asarray(v, dtype=object))
    return {k: np.concatenate(v) for k, v in cols.items()}, per_rank


def _all_columns(tables):
    import pyarrow.parquet as pq
    from interest_lib.training.feed import DeltaArrowFeed

    probe = DeltaArrowFeed(_spec(tables, ["window"], "train"))
    schema = pq.read_schema(probe._units[0].path)
    return [n for n in schema.names if n != "split"]


@pytest.mark.parametrize("world", [1, 2])
def test_petastorm_feed_delivers_the_native_feeds_rows_and_tensors(card_data, world):
    _conf, tables = card_data
    columns = _all_columns(tables)
    for split in ("train", "validation"):
        native, _ = _collect(make_feed("delta", _spec(tables, columns, split, batch_size=100)), world)
        feed = make_feed("petastorm", _spec(tables, columns, split, batch_size=100))
        assert type(feed).__name__ == "PetastormFeed"
        got, per_rank = _collect(feed, world)
        assert feed.num_rows() == len(native["window"]) == len(got["window"])
        key = lambda d: np.lexsort((d["window"], d["user_id"].astype(str)))  # noqa: E731
        a, b = key(native), key(got)
        for c in columns:
            assert native[c].dtype == got[c].dtype and native[c].shape == got[c].shape, c
            assert (native[c][a] == got[c][b]).all(), c
        # Tensor types as the models receive them.
        batch = per_rank[0][0]
        assert batch["ev_category"].dtype == torch.int64 and batch["ev_category"].dim() == 2
        assert batch["win_share"].dtype == torch.float32 and batch["is_switch"].dtype == torch.bool
        assert batch["next_category"].dtype == torch.int64 and isinstance(batch["user_id"], list)


def test_petastorm_feed_shards_into_equal_deterministic_steps(card_data):
    _conf, tables = card_data
    spec = _spec(tables, ["user_id", "window", "ev_category"], "train", batch_size=64,
                 shuffle_buffer=512, seed=7, drop_last=True)
    feed = make_feed("petastorm", spec)
    assert len(feed._petastorm_pieces()) >= 2, "the store should give Petastorm row groups to shard"
    steps = feed.steps_per_epoch(2)
    assert steps > 5
    rows = {}
    for rank in (0, 1):
        batches = list(feed.batches(rank, 2, epoch=0))
        assert len(batches) == steps and all(len(b["window"]) == 64 for b in batches)
        rows[rank] = {(u, int(w)) for b in batches for u, w in zip(b["user_id"], b["window"])}
        again = list(feed.batches(rank, 2, epoch=0))
        assert all(torch.equal(x["ev_category"], y["ev_category"]) for x, y in zip(batches, again))
        other = list(feed.batches(rank, 2, epoch=1))
        assert len(other) == steps
        assert not all(torch.equal(x["ev_category"], y["ev_category"]) for x, y in zip(batches, other))
    assert not rows[0] & rows[1], "ranks must read disjoint shards"


def test_more_ranks_than_row_groups_fall_back_to_row_sharding(card_data):
    _conf, tables = card_data
    columns = ["user_id", "window"]
    probe = make_feed("petastorm", _spec(tables, columns, "train"))
    world = len(probe._petastorm_pieces()) + 1  # Petastorm itself refuses this many shards
    feed = make_feed("petastorm", _spec(tables, columns, "train", batch_size=16, shuffle_buffer=64, seed=7,
                                        drop_last=True))
    steps, seen = feed.steps_per_epoch(world), []
    for rank in range(world):
        batches = list(feed.batches(rank, world, 0))
        assert len(batches) == steps > 0
        seen += [(u, int(w)) for b in batches for u, w in zip(b["user_id"], b["window"])]
    assert len(seen) == len(set(seen)), "ranks must read disjoint rows"
    every = make_feed("petastorm", _spec(tables, columns, "train", batch_size=100))
    rows = {(u, int(w)) for r in range(world) for b in every.batches(r, world, 0)
            for u, w in zip(b["user_id"], b["window"])}
    assert len(rows) == every.num_rows()


def test_petastorm_cache_lives_in_the_given_folder_and_is_removed(card_data, tmp_path):
    from interest_lib.training.petastorm_feed import PetastormFeed

    _conf, tables = card_data
    feed = PetastormFeed(_spec(tables, ["window"], "validation", batch_size=50), cache_dir=str(tmp_path / "cache"))
    first = sum(len(b["window"]) for b in feed.batches())
    cached = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert cached, "the local-disk cache wrote nothing"
    assert sum(len(b["window"]) for b in feed.batches()) == first == feed.num_rows()
    feed.close()
    assert os.listdir(tmp_path / "cache") == []


def test_horovod_trains_the_same_weights_as_torch_distributor(trained):
    a = load_record(trained["default"].runs["migration"].model)
    b = load_record(trained["horovod_delta"].runs["migration"].model)
    assert [h["epoch"] for h in a["history"]] == [h["epoch"] for h in b["history"]]
    for x, y in zip(a["history"], b["history"]):
        assert x["samples"] == y["samples"]
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-4)
        assert x["val_next_ce"] == pytest.approx(y["val_next_ce"], rel=1e-4)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-4, rtol=1e-4), key


def _metric(rows, model, metric, slice_="all"):
    return next(r["value"] for r in rows if (r["model"], r["slice"], r["metric"]) == (model, slice_, metric))


def test_card_path_matches_the_default_path_and_beats_markov(card_data, trained):
    from interest_lib.evaluate.job import evaluate_runs

    conf, tables = card_data
    path, version = tables.path(GOLD_TRAINING_SEQUENCES), tables.version(GOLD_TRAINING_SEQUENCES)
    default, _ = evaluate_runs(path, version, trained["default"].runs)
    card, _ = evaluate_runs(path, version, trained["card"].runs)
    mig, evo = conf.train.migration_model, conf.train.evolution_model
    summary = {name: {"ndcg@10": _metric(rows, mig, "ndcg@10"), "hr@10": _metric(rows, mig, "hr@10"),
                      "js": _metric(rows, evo, "js"), "markov_ndcg@10": _metric(rows, "markov", "ndcg@10"),
                      "markov_js": _metric(rows, "markov", "js")}
               for name, rows in (("default", default), ("card", card))}
    print(f"card vs default: {summary}")
    d, c = summary["default"], summary["card"]
    # Same data, same seed: the card path's models land within the sample-order noise of the default's.
    assert abs(c["ndcg@10"] - d["ndcg@10"]) <= NDCG_TOL, summary
    assert abs(c["js"] - d["js"]) <= JS_REL_TOL * d["js"], summary
    # And they beat the Markov baseline as the default path's do (tests/integration/test_training.py).
    assert c["ndcg@10"] > c["markov_ndcg@10"] + 0.03, summary
    assert c["js"] < c["markov_js"], summary
    # Each path trained for real: 2 ranks, every epoch on all ranks' rows.
    for name in ("default", "card"):
        record = load_record(trained[name].runs["migration"].model)
        assert record["lineage"]["conf"]["train"]["num_processes"] == 2
        assert record["lineage"]["conf"]["train"]["backend"] == ("horovod" if name == "card" else "torch_distributor")
        assert record["history"][0]["samples"] > 1000


def test_card_path_models_score_every_eligible_user(spark, card_data, trained):
    """The card path's models serve: ``interest score`` (its pandas UDFs under the card's pins:
    pyspark 4.0, pyarrow 14, pandas 2.2, numpy 1.x) scores every eligible user once with the
    Horovod + Petastorm runs, and a BI reader (pyarrow 14) reads valid rows back."""
    from interest_lib.scoring.job import run_score
    from interest_lib.storage.catalog import GOLD_RECOMMENDATIONS, GOLD_USER_INTEREST_SCORES
    from tests.helpers import assert_valid_window_scores, read_as_bi

    _, tables = card_data
    card = trained["card"]
    report = run_score(spark, card.conf, tables)
    assert report.scored_users == report.eligible_users > 500, report
    assert report.migration.endswith(card.runs["migration"].run_id), report
    assert report.evolution.endswith(card.runs["evolution"].run_id), report
    scores = read_as_bi(tables.path(GOLD_USER_INTEREST_SCORES))
    assert len(scores) == scores["user_id"].nunique() == report.scored_users
    window = scores[scores["scoring_path"] == "window"]
    assert len(window) == report.eligible_users - report.cold_start_users
    assert_valid_window_scores(window, card.conf.score)
    recs = read_as_bi(tables.path(GOLD_RECOMMENDATIONS))
    assert recs.groupby("user_id").size().eq(card.conf.score.recommendations).all()
