"""``interest train --warm-start`` end to end on a tiny gold.training_sequences written here:
a run on version 0, then new weeks (and a new category whose key sorts in the middle, so every
later id moves) as version 1; the warm start is a new run with lineage to both versions, starting
from the base run's weights at the categories' new ids; a contract change stops it with the
difference named and nothing written. Real training (one rank in this process: the driver
backend, which trains one TorchDistributor rank's weights), real Delta tables."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest

from interest_lib.runs.store import RunStore, latest_run, load_record
from interest_lib.storage.catalog import CONTRACTS, GOLD_TRAINING_SEQUENCES, REF_VOCAB
from interest_lib.training.job import run_train
from interest_lib.training.warm_start import WarmStartError

pytestmark = [pytest.mark.spark]

L, W, K = 50, 8, 5


def _rows(keys: list[str], weeks: int, users: int = 24, seed: int = 0) -> list[dict]:
    """Samples whose next window repeats the user's own two categories (a learnable rule); the
    last week is test, the one before validation."""
    rng = np.random.default_rng(seed)
    idx = {k: i + 1 for i, k in enumerate(sorted(keys))}
    ids = list(idx.values())
    out = []
    for u in range(users):
        mine = [idx[keys[u % len(keys)]], idx[keys[(u + 1) % len(keys)]]]
        for w in range(1, weeks):
            split = "test" if w == weeks - 1 else "validation" if w == weeks - 2 else "train"
            cats = [int(rng.choice(mine)) for _ in range(10)]
            out.append({
                "user_id": f"u{u}", "window": w, "cutoff": dt.datetime(2026, 1, 5) + dt.timedelta(weeks=w),
                "split": split, "ev_category": [0] * (L - 10) + cats, "ev_item": [0] * L, "ev_type": [0] * (L - 10) + [1] * 10,
                "ev_interval": [0] * (L - 10) + [6] * 10, "ev_text": [0] * L,
                "win_category": [0] * (W * K - 2) + mine, "win_share": [0.0] * (W * K - 2) + [0.5, 0.5],
                "next_category": int(rng.choice(mine)), "is_switch": False,
                "next_dist_category": [0, 0, 0] + mine, "next_dist_share": [0.0, 0.0, 0.0, 0.5, 0.5],
                "next_stage": 1 + int(rng.integers(0, 3)), })
    assert max(ids) == len(keys)
    return out


def _write(spark, tables, keys: list[str], weeks: int) -> int:
    vocab = [("category", k, i + 1) for i, k in enumerate(sorted(keys))]
    tables.write(spark.createDataFrame(vocab, CONTRACTS[REF_VOCAB].ddl()), REF_VOCAB, mode="overwrite")
    df = spark.createDataFrame(_rows(keys, weeks), CONTRACTS[GOLD_TRAINING_SEQUENCES].ddl())
    return tables.write(df, GOLD_TRAINING_SEQUENCES, mode="overwrite", partition_by=["split"]).version


@pytest.fixture
def conf(tmp_conf, tmp_path):
    t = tmp_conf.train
    t.store, t.num_processes, t.epochs, t.warm_start_epochs, t.batch_size = str(tmp_path / "runs"), 1, 2, 1, 16
    # One rank in this process (no torchrun per run: the warm start is the subject here; the
    # driver backend trains one TorchDistributor rank's weights, tests/unit/test_driver_backend.py).
    t.backend = "driver"
    t.torch_threads, t.patience = 1, 9
    tmp_conf.tracking.enabled = False
    tmp_conf.models.evolution_gru.hidden = 16
    return tmp_conf


def test_warm_start_continues_the_run_on_the_newer_version(spark, tables, conf):
    keys = ["bakery", "dairy", "meat", "produce", "snacks"]
    assert _write(spark, tables, keys, weeks=6) == 0
    base = run_train(spark, conf, tables, model_name="evolution_gru")
    assert base.table_version == 0 and base.epochs_run == 2

    # New weeks, and a category whose key sorts between existing ones: dairy stays 2, meat 3 -> 4 ...
    assert _write(spark, tables, keys + ["deli"], weeks=8) == 1
    warm = run_train(spark, conf, tables, model_name="evolution_gru", warm_start=True)
    assert warm.run_id != base.run_id and warm.table_version == 1
    assert warm.epochs_run == conf.train.warm_start_epochs
    lineage = json.load(open(os.path.join(warm.store, "lineage.json")))
    assert lineage["table_version"] == 1
    assert lineage["warm_start"]["from_run"] == base.run_id and lineage["warm_start"]["from_table_version"] == 0
    assert lineage["warm_start"]["added_categories"] == ["deli"]
    assert latest_run(conf.train.store, "evolution").run_id == warm.run_id  # published
    again = run_train(spark, conf, tables, model_name="evolution_gru", warm_start=True)
    assert again.skipped and again.run_id == warm.run_id  # a rerun does nothing

    # The warm run starts from the base weights at the new ids (key by key, not by position).
    old = load_record(RunStore(base.store).model)["state_dict"]["transition.weight"]
    init = load_record(os.path.join(warm.store, "warm_start.pt"))["state_dict"]["transition.weight"]
    new_id = {1: 1, 2: 2, 3: 4, 4: 5, 5: 6}  # bakery, dairy, then 'deli' (3), then meat, produce, snacks
    for i, j in new_id.items():
        for a, b in new_id.items():
            assert float(init[j, b]) == pytest.approx(float(old[i, a]))
    assert float(init[3].abs().sum()) == 0.0  # deli: the fresh initialisation (zeros)

    # A changed input contract stops a warm start, names the difference, and writes no run.
    runs_before = sorted(os.listdir(conf.train.store))
    assert _write(spark, tables, keys + ["deli", "wine"], weeks=9) == 2
    conf.sequences.max_windows = 6
    with pytest.raises(WarmStartError, match="input contract max_windows: 32 \\(base run\\) vs 6"):
        run_train(spark, conf, tables, model_name="evolution_gru", warm_start=True)
    assert sorted(os.listdir(conf.train.store)) == runs_before


def test_transfer_starts_each_target_category_from_the_source_category_whose_name_reads_closest(
        spark, tables, conf, tmp_path):
    source_keys = ["bakery", "dairy", "meat", "produce", "snacks"]
    _write(spark, tables, source_keys, weeks=6)
    source = run_train(spark, conf, tables, model_name="evolution_gru")
    assert json.load(open(os.path.join(source.store, "categories.json"))) == {k: k for k in source_keys}

    # Another catalogue: no key in common, the same kinds of goods.
    target_keys = ["beef steaks", "bread rolls", "milk", "potato chips", "vegetables"]
    _write(spark, tables, target_keys, weeks=6)
    with pytest.raises(WarmStartError, match="no finished run there"):
        run_train(spark, conf, tables, model_name="evolution_gru", transfer_from=str(tmp_path / "nowhere"))
    with pytest.raises(WarmStartError, match="that run trained 'evolution_gru', this one trains 'migration_augru'"):
        run_train(spark, conf, tables, model_name="migration_augru", transfer_from=source.store)

    target = run_train(spark, conf, tables, model_name="evolution_gru", transfer_from=source.store)
    assert target.run_id != source.run_id and target.epochs_run == conf.train.epochs  # the full schedule
    aligned = {t: s for t, (s, _cos) in json.load(open(os.path.join(target.store, "lineage.json")))
               ["transfer"]["alignment"].items()}
    assert aligned == {"beef steaks": "meat", "bread rolls": "bakery", "milk": "dairy",
                       "potato chips": "snacks", "vegetables": "produce"}
    old = load_record(RunStore(source.store).model)["state_dict"]["transition.weight"]
    init = load_record(os.path.join(target.store, "warm_start.pt"))["state_dict"]["transition.weight"]
    s_id = {k: i + 1 for i, k in enumerate(sorted(source_keys))}
    t_id = {k: i + 1 for i, k in enumerate(sorted(target_keys))}
    for t, s in aligned.items():
        for t2, s2 in aligned.items():
            assert float(init[t_id[t], t_id[t2]]) == pytest.approx(float(old[s_id[s], s_id[s2]]))
