"""Warm start checks and the key-by-key weight mapping (interest_lib.training.warm_start).

Known answers: a base model and its weights moved onto a vocabulary with categories and items
inserted in the middle (every later id shifts) must give the same predictions over the base
run's categories when fed the same events spelled with the new ids; a model code, contract,
hyper-parameter, table or vocabulary difference stops with a message naming it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from interest_lib.models import InputSizes, build_model, registered_models
from interest_lib.training.warm_start import WarmStartError, plan_warm_start, remap_state
from tests.unit.test_models import C, ITEMS, K, SIZES, TEXTS, make_batch, small_params

pytestmark = pytest.mark.unit

CATS = [""] + [f"c{i:02d}" for i in range(1, C + 1)]
ITEM_KEYS = [""] + [f"i{i:03d}" for i in range(1, ITEMS + 1)]
TEXT_KEYS = [""] + [f"t{i:02d}" for i in range(1, TEXTS + 1)]
BASE_VOCAB = {"category": CATS, "item": ITEM_KEYS, "text": TEXT_KEYS}
CONTRACT = {"top_k": K, "max_events": 50, "max_windows": 8, "window_days": 7, "step_days": 7,
            "category_level": 3, "session_bucket": 5, "event_types": 7, "intervals": 8}


def newer_vocab():
    """The base vocabulary plus two categories and three items whose keys sort in the middle
    (ref.vocab numbers keys in key order, so every later id moves)."""
    cats = sorted(CATS[1:] + ["c03a", "c07a"])
    items = sorted(ITEM_KEYS[1:] + ["i001a", "i010a", "i020a"])
    return {"category": [""] + cats, "item": [""] + items, "text": TEXT_KEYS}


def lineage(**changes):
    base = {"run_id": "evolution_gru-v3-abc", "model": "evolution_gru", "model_code": "f00d",
            "contract": dict(CONTRACT), "table_path": "/wh/gold/training_sequences", "table_version": 3,
            "conf": {"models": {"evolution_gru": {"hidden": 32}}}}
    base.update(changes)
    return base


def plan(base=None, vocab=None, **kw):
    args = dict(model_name="evolution_gru", model_code="f00d", params={"hidden": 32}, contract=dict(CONTRACT),
                table_path="/wh/gold/training_sequences", table_version=5)
    args.update(kw)
    return plan_warm_start(base or lineage(), BASE_VOCAB, vocab or newer_vocab(), **args)


def test_plan_maps_every_key_to_its_new_id():
    p = plan()
    new = newer_vocab()
    for kind in ("category", "item", "text"):
        m = p.mapping[kind]
        assert [new[kind][j] for j in m[1:]] == BASE_VOCAB[kind][1:]
    assert p.added["category"] == ["c03a", "c07a"] and len(p.added["item"]) == 3 and p.added["text"] == []
    summary = p.summary()
    assert summary["from_table_version"] == 3 and summary["added"]["category"] == 2
    assert summary["ids_moved"]["category"] == C - 3  # c04.. shift by one or two


@pytest.mark.parametrize("change, needle", [
    ({"model_code": "beef"}, "model code of evolution_gru: fingerprint beef"),
    ({"model": "migration_augru"}, "model 'migration_augru' (base run)"),
    ({"contract": {**CONTRACT, "top_k": 3}}, "input contract top_k: 3 (base run) vs 5"),
    ({"contract": {**CONTRACT, "category_level": 2}}, "input contract category_level: 2"),
    ({"conf": {"models": {"evolution_gru": {"hidden": 64}}}}, "models.evolution_gru hidden: 64 (base run) vs 32"),
    ({"table_version": 5}, "table version 5 (base run) is not older than 5"),
    ({"table_path": "/other/gold/training_sequences"}, "table /other/gold/training_sequences (base run)"),
])
def test_a_difference_stops_the_warm_start_and_is_named(change, needle):
    with pytest.raises(WarmStartError, match="cannot warm-start from run evolution_gru-v3-abc") as err:
        plan(lineage(**change))
    assert needle in str(err.value)


def test_a_run_without_fingerprint_or_contract_is_refused():
    old = lineage()
    del old["model_code"]
    with pytest.raises(WarmStartError, match="no model code fingerprint or input contract"):
        plan(old)


def test_a_category_missing_from_the_new_vocabulary_stops_it():
    vocab = newer_vocab()
    vocab["category"] = [k for k in vocab["category"] if k != "c05"]
    with pytest.raises(WarmStartError, match=r"1 category key\(s\) of the base run are not in .*'c05'"):
        plan(vocab=vocab)


def _renamed(batch: dict, mapping: dict) -> dict:
    out = dict(batch)
    for col in ("ev_category", "win_category", "next_dist_category", "next_category"):
        out[col] = torch.as_tensor(mapping["category"])[batch[col]]
    out["ev_item"] = torch.as_tensor(mapping["item"])[batch["ev_item"]]
    return out


@pytest.mark.parametrize("name", registered_models())
def test_moved_weights_predict_the_same_over_the_known_categories(name):
    torch.manual_seed(0)
    text = (torch.randn(ITEMS + 1, 16).numpy(), torch.randn(TEXTS + 1, 16).numpy())
    params = small_params(name, dropout=0.0)
    base = build_model(name, params, SIZES, text).eval()
    with torch.no_grad():  # as if trained: an untrained model's id-indexed weights barely matter
        for w in base.parameters():
            w.add_(0.5 * torch.randn_like(w))
    p = plan(lineage(model=name), model_name=name)
    new_sizes = dataclasses.replace(SIZES, categories=C + 2, items=ITEMS + 3)
    # The new table's frozen text vectors: the same vectors at the items' new ids (added items random).
    new_items = torch.randn(ITEMS + 4, 16).numpy()
    new_items[p.mapping["item"]] = text[0]
    torch.manual_seed(1)
    fresh = build_model(name, params, new_sizes, (new_items, text[1]))
    moved = remap_state(base.state_dict(), fresh.state_dict(), dataclasses.asdict(SIZES), p)
    fresh.load_state_dict(moved)
    fresh.eval()
    batch = make_batch(16, torch.Generator().manual_seed(3))
    cols = lambda m, b: {c: b[c] for c in m.columns}  # noqa: E731
    with torch.no_grad():
        a = base(cols(base, batch))
        b = fresh(cols(fresh, _renamed(batch, p.mapping)))
    key = "logits" if "logits" in a else "forecast"
    old, new = a[key], b[key][:, torch.as_tensor(p.mapping["category"])]
    if key == "logits":  # log-softmax over the known categories only
        old, new = old[:, 1:].log_softmax(-1), new[:, 1:].log_softmax(-1)
    else:  # renormalised over the known categories
        old, new = old[:, 1:] / old[:, 1:].sum(-1, keepdim=True), new[:, 1:] / new[:, 1:].sum(-1, keepdim=True)
    assert torch.allclose(old, new, atol=1e-5), (old - new).abs().max()
    # Wrongly by position (the silent mis-indexing warm starts must never do) gives other predictions.
    positional = {k: v.clone() for k, v in fresh.state_dict().items()}
    for k, v in base.state_dict().items():
        if k.split(".")[-1] not in ("item_text", "event_text"):
            positional[k][tuple(slice(0, n) for n in v.shape)] = v
    fresh.load_state_dict(positional)
    with torch.no_grad():
        c = fresh(cols(fresh, _renamed(batch, p.mapping)))[key][:, torch.as_tensor(p.mapping["category"])]
    if key == "logits":
        c = c[:, 1:].log_softmax(-1)
    else:
        c = c[:, 1:] / c[:, 1:].sum(-1, keepdim=True)
    assert not torch.allclose(old, c, atol=1e-3)


def test_a_shape_change_outside_the_vocabulary_is_named():
    p = plan()
    base = {"proj.weight": torch.zeros(32, C + 1)}
    fresh = {"proj.weight": torch.zeros(64, C + 3)}
    with pytest.raises(WarmStartError, match="weight proj.weight: axis 0 is 32 long"):
        remap_state(base, fresh, dataclasses.asdict(SIZES), p)
