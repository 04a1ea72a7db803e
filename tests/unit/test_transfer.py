"""Transfer between catalogues (interest_lib.training.transfer): categories aligned by the real
bundled MiniLM encoder (no mocks), and a target model starting from the aligned source rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from interest_lib.conf import EmbeddingsConf
from interest_lib.features.embeddings import get_encoder
from interest_lib.models import InputSizes, build_model
from interest_lib.training.transfer import align_categories, category_text, transfer_plan
from interest_lib.training.warm_start import WarmStartError, remap_state
from tests.unit.test_models import small_params

pytestmark = pytest.mark.unit

SOURCE = {"running shoes": "sports/running/running shoes", "strollers": "baby/transport/strollers",
          "frying pans": "kitchen/cookware/frying pans", "red wine": "drinks/wine/red wine"}
TARGET = {"ATHLETIC FOOTWEAR": "SHOES/ATHLETIC FOOTWEAR", "BABY CARRIAGES": "BABY/BABY CARRIAGES",
          "POTS AND PANS": "HOUSEWARES/POTS AND PANS", "WINE": "BEVERAGES/WINE"}


@pytest.fixture(scope="module")
def alignment():
    encoder = get_encoder(EmbeddingsConf())
    return align_categories({k: category_text(k, p) for k, p in SOURCE.items()},
                            {k: category_text(k, p) for k, p in TARGET.items()}, encoder)


def test_categories_align_by_the_meaning_of_their_names_and_paths(alignment):
    assert {t: s for t, (s, _) in alignment.pairs.items()} == {
        "ATHLETIC FOOTWEAR": "running shoes", "BABY CARRIAGES": "strollers",
        "POTS AND PANS": "frying pans", "WINE": "red wine"}
    assert all(0.3 < cos <= 1.0 for _, cos in alignment.pairs.values())


def test_the_target_model_starts_from_its_aligned_source_rows(alignment):
    src_vocab = {"category": [""] + sorted(SOURCE), "item": [""] + [f"s{i}" for i in range(6)], "text": [""]}
    tgt_vocab = {"category": [""] + sorted(TARGET), "item": [""] + [f"t{i}" for i in range(9)], "text": [""]}
    src_sizes = InputSizes(categories=4, items=6, texts=0)
    tgt_sizes = dataclasses.replace(src_sizes, items=9)
    torch.manual_seed(0)
    source = build_model("evolution_gru", small_params("evolution_gru"), src_sizes)
    with torch.no_grad():
        for w in source.parameters():
            w.add_(torch.randn_like(w))
    fresh = build_model("evolution_gru", small_params("evolution_gru"), tgt_sizes).state_dict()
    plan = transfer_plan(src_vocab, tgt_vocab, alignment)
    moved = remap_state(source.state_dict(), fresh, dataclasses.asdict(src_sizes), plan)
    s_id = {k: i for i, k in enumerate(src_vocab["category"])}
    w_src, w_tgt = source.state_dict()["transition.weight"], moved["transition.weight"]
    for i, t in enumerate(tgt_vocab["category"][1:], 1):
        for j, u in enumerate(tgt_vocab["category"][1:], 1):
            a, b = s_id[alignment.pairs[t][0]], s_id[alignment.pairs[u][0]]
            assert float(w_tgt[i, j]) == float(w_src[a, b])
    assert torch.equal(moved["gru.weight_hh_l0"], source.state_dict()["gru.weight_hh_l0"])


def test_an_unaligned_target_category_is_named(alignment):
    vocab = {"category": ["", "ATHLETIC FOOTWEAR", "GARDEN HOSES"], "item": [""], "text": [""]}
    with pytest.raises(WarmStartError, match="target category 'GARDEN HOSES' has no aligned source category"):
        transfer_plan({"category": [""] + sorted(SOURCE), "item": [""], "text": [""]}, vocab, alignment)
