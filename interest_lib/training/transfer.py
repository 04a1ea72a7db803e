"""Transfer between catalogues: a model pretrained on a source store starts a target's model.

The two catalogues' categories are aligned through the sentence embeddings (the project's MiniLM
encoder, :class:`~interest_lib.features.embeddings.TextEncoder`) of their names and paths, not
by hand: each target category takes the source category whose text is closest (cosine). The
target model then starts from the source model's weights, each target category's rows copied
from its aligned source category (:func:`transfer_plan` + :func:`~interest_lib.training.warm_start.remap_state`);
items and texts of the two catalogues do not correspond and keep the fresh initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interest_lib.training.warm_start import WarmStartError, WarmStartPlan


@dataclass
class Alignment:
    """Target category key -> (aligned source key, cosine of their texts)."""

    pairs: dict

    def below(self, threshold: float) -> list:
        """Target keys whose best source match is weaker than ``threshold`` (to review)."""
        return sorted(k for k, (_, cos) in self.pairs.items() if cos < threshold)


def category_text(key: str, path: str = "") -> str:
    """The text a category is embedded by: its name, then its path with ' > ' between levels."""
    path = (path or "").replace("/", " > ")
    return f"{key}. {path}" if path and path != key else key


def align_categories(source: dict, target: dict, encoder) -> Alignment:
    """Align each target category to its nearest source category by text.

    Args:
        source, target: category key -> text (:func:`category_text`).
        encoder: anything with ``encode(list[str]) -> [N, d]`` L2-normalised vectors (the
            project's TextEncoder).
    """
    if not source or not target:
        raise ValueError("align_categories needs at least one source and one target category")
    s_keys, t_keys = list(source), list(target)
    s_vec = np.asarray(encoder.encode([source[k] for k in s_keys]), dtype=np.float64)
    t_vec = np.asarray(encoder.encode([target[k] for k in t_keys]), dtype=np.float64)
    sim = t_vec @ s_vec.T
    best = sim.argmax(1)
    return Alignment({t: (s_keys[j], float(sim[i, j])) for i, (t, j) in enumerate(zip(t_keys, best))})


def transfer_plan(source_vocab: dict, target_vocab: dict, alignment: Alignment, source_run: str = "source") -> WarmStartPlan:
    """The weight moves of a transfer: every target category id takes its aligned source
    category's id; items and texts copy nothing (fresh initialisation).

    Args:
        source_vocab, target_vocab: kind -> [key of id 0 (''), key of id 1, ...] (``vocab.json``).
        alignment: from :func:`align_categories`, covering every target category.

    Raises:
        WarmStartError: a target category has no alignment, or is aligned to a key the source
            vocabulary lacks.
    """
    s_index = {k: i for i, k in enumerate(source_vocab["category"]) if i > 0 and k}
    dst, src = [], []
    for j, key in enumerate(target_vocab["category"]):
        if j == 0 or not key:
            continue
        if key not in alignment.pairs:
            raise WarmStartError(f"transfer from {source_run}: target category {key!r} has no aligned source category")
        source_key = alignment.pairs[key][0]
        if source_key not in s_index:
            raise WarmStartError(f"transfer from {source_run}: {key!r} is aligned to {source_key!r}, "
                                 "which the source run's vocabulary lacks")
        dst.append(j), src.append(s_index[source_key])
    plan = WarmStartPlan(base_run=source_run, base_table_version=-1)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    for kind in ("category", "item", "text"):
        plan.new_length[kind] = len(target_vocab.get(kind, [""]))
        plan.mapping[kind] = np.zeros(len(source_vocab.get(kind, [""])), np.int64)
        plan.pairs[kind] = empty
    plan.pairs["category"] = ([0] + src, [0] + dst)
    plan.added["category"] = []
    return plan


def category_texts(tables, keys) -> dict:
    """Category key -> :func:`category_text` for ``keys``, each category's one path over
    ``ref.items`` (the rule the flows use, :func:`~interest_lib.features.migrations.one_path_per_category`;
    a category without items there, or a warehouse without ``ref.items``: its key alone)."""
    from interest_lib.features.migrations import one_path_per_category
    from interest_lib.storage.catalog import REF_ITEMS

    paths = {}
    if tables.exists(REF_ITEMS):
        paths = {r[0]: r[1] for r in one_path_per_category(tables.read(REF_ITEMS)).collect()}
    return {k: category_text(k, paths.get(k, "")) for k in keys if k}


def plan_transfer(source_vocab: dict, source_texts: dict, target_vocab: dict, target_texts: dict, encoder,
                  source_run: str = "source") -> tuple[WarmStartPlan, Alignment]:
    """Align the target's categories to the source's by text and plan the weight moves.

    Args:
        source_vocab, target_vocab: kind -> keys by id (``vocab.json``).
        source_texts, target_texts: category key -> text; a key missing there is embedded by its
            name alone.
        encoder: the text encoder (:func:`align_categories`).
    """
    def texts(vocab, known):
        return {k: known.get(k, k) for k in vocab["category"] if k}

    alignment = align_categories(texts(source_vocab, source_texts), texts(target_vocab, target_texts), encoder)
    return transfer_plan(source_vocab, target_vocab, alignment, source_run), alignment
