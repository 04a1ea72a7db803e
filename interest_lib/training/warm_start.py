"""Warm start: continue a finished run on a newer version of gold.training_sequences.

``interest train --warm-start`` takes the latest published run of the task as its base, checks
that the new table can be fed to that model, and starts a new run (its own id, lineage to both
table versions) whose weights begin as the base run's, for a short schedule
(``train.warm_start_epochs``). What is checked, each failure a :class:`WarmStartError` naming
the difference:

- model code: the base run's model name, hyper-parameters and source fingerprint
  (``lineage.json`` ``model_code``) must equal the current ones;
- input contract (:func:`input_contract`): top-K per window, sequence lengths, window length
  and step, category level, session rule, event types, interval buckets;
- vocabulary: the run store keeps the run's id -> key lists (``vocab.json``) for categories,
  items and texts. ref.vocab numbers keys in key order, so a category added in the new weeks
  shifts the ids of every category after it: the weights are moved to the new ids key by key
  (:func:`remap_state`), never by position; added keys start from the fresh model's
  initialisation and are listed in the lineage; a key the base run knew that the new table
  lacks stops the warm start (its weights would silently vanish).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

#: Id kinds whose vocabularies index model weights (event types are fixed by the schema).
VOCAB_KINDS = ("category", "item", "text")
#: Buffers rebuilt from the new table's inputs, never copied from the base run (frozen text vectors).
FRESH_BUFFERS = ("item_text", "event_text")


class WarmStartError(ValueError):
    """The base run cannot be continued on the new table; the message names the difference."""


def input_contract(conf, sizes) -> dict:
    """What a model's inputs mean beyond the vocabulary: one dict compared key by key.

    Args:
        conf: the configuration the table was (or is being) trained with.
        sizes: the run's :class:`~interest_lib.models.InputSizes`.
    """
    f, s = conf.features, conf.sequences
    return {"top_k": int(sizes.top_k), "max_events": int(s.max_events), "max_windows": int(s.max_windows),
            "window_days": int(f.window_days), "step_days": int(f.step_days),
            "category_level": int(f.category_level), "session_bucket": int(sizes.session_bucket),
            "event_types": int(sizes.event_types), "intervals": int(sizes.intervals)}


def vocab_lists(tables) -> dict[str, list[str]]:
    """ref.vocab as ``kind -> [key of id 0 (''), key of id 1, ...]`` for :data:`VOCAB_KINDS`
    (collected to the driver: one string per category, item and text)."""
    from pyspark.sql import functions as F

    from interest_lib.storage.catalog import REF_VOCAB

    rows = tables.read(REF_VOCAB).filter(F.col("kind").isin(*VOCAB_KINDS)).select("kind", "key", "idx").collect()
    out = {}
    for kind in VOCAB_KINDS:
        mine = [(r["idx"], r["key"]) for r in rows if r["kind"] == kind]
        keys = [""] * (max((i for i, _ in mine), default=0) + 1)
        for i, k in mine:
            keys[i] = k
        out[kind] = keys
    return out


@dataclass
class WarmStartPlan:
    """How the base run's weights map onto the new table's ids."""

    base_run: str
    base_table_version: int
    mapping: dict = field(default_factory=dict)
    """kind -> int array: base id -> new id (index 0 -> 0)."""
    added: dict = field(default_factory=dict)
    """kind -> keys new in the new vocabulary (start from the fresh initialisation)."""
    new_length: dict = field(default_factory=dict)
    """kind -> rows of the new vocabulary (largest id + 1)."""
    pairs: dict = field(default_factory=dict)
    """kind -> (base ids, new ids) to copy, when not every base id has one new id (transfer:
    several target categories may take one source category's weights; an empty pair copies
    nothing and the kind keeps the fresh initialisation). Default: (all base ids, ``mapping``)."""

    def copies(self, kind: str, base_rows: int) -> tuple:
        """(base ids, new ids) whose weights move for ``kind``."""
        if kind in self.pairs:
            return self.pairs[kind]
        return np.arange(base_rows), self.mapping[kind]

    def summary(self) -> dict:
        """The lineage entry: base run and table version, and what the vocabulary mapping did."""
        moved = {k: int((m != np.arange(len(m))).sum()) for k, m in self.mapping.items()}
        return {"from_run": self.base_run, "from_table_version": self.base_table_version,
                "added": {k: len(v) for k, v in self.added.items()},
                "added_categories": list(self.added.get("category", []))[:50],
                "ids_moved": moved, "mapping": "by key (ref.vocab)"}


def _diff(what: str, base: dict, new: dict) -> list[str]:
    keys = sorted(set(base) | set(new))
    return [f"{what} {k}: {base.get(k)!r} (base run) vs {new.get(k)!r} (new table)"
            for k in keys if base.get(k) != new.get(k)]


def plan_warm_start(base_lineage: dict, base_vocab: dict, new_vocab: dict, model_name: str,
                    model_code: str, params: dict, contract: dict, table_path: str,
                    table_version: int) -> WarmStartPlan:
    """Check that the base run (its ``lineage.json`` and ``vocab.json``) can continue on the new
    table and return the id mapping.

    Raises:
        WarmStartError: the model, its code or hyper-parameters, the input contract or the
            table differ, the new version is not newer, or a known key is missing from the new
            vocabulary; the message names every difference found.
    """
    from interest_lib.runs.store import table_identity

    run = base_lineage.get("run_id", "?")
    problems = []
    if base_lineage.get("model") != model_name:
        problems.append(f"model {base_lineage.get('model')!r} (base run) vs {model_name!r} (requested)")
    if "model_code" not in base_lineage or "contract" not in base_lineage:
        raise WarmStartError(f"base run {run} records no model code fingerprint or input contract in its "
                             "lineage (trained before warm starts existed): train it again, then warm-start")
    if base_lineage["model_code"] != model_code:
        problems.append(f"model code of {model_name}: fingerprint {base_lineage['model_code']} (base run) vs "
                        f"{model_code} (current source): the architecture changed, retrain from scratch")
    base_params = (base_lineage.get("conf", {}).get("models", {}) or {}).get(model_name)
    if base_params is not None:
        problems += _diff(f"models.{model_name}", base_params, params)
    problems += _diff("input contract", base_lineage["contract"], contract)
    if table_identity(base_lineage.get("table_path", "")) != table_identity(table_path):
        problems.append(f"table {base_lineage.get('table_path')} (base run) vs {table_path} (new)")
    elif int(base_lineage.get("table_version", -1)) >= table_version:
        problems.append(f"table version {base_lineage.get('table_version')} (base run) is not older than "
                        f"{table_version}: nothing new to continue on (use plain `interest train`)")
    if problems:
        raise WarmStartError(f"cannot warm-start from run {run}: " + "; ".join(problems))
    plan = WarmStartPlan(base_run=run, base_table_version=int(base_lineage["table_version"]))
    for kind in VOCAB_KINDS:
        old, new = base_vocab.get(kind, [""]), new_vocab.get(kind, [""])
        where = {k: i for i, k in enumerate(new) if i > 0 and k != ""}
        missing = [k for k in old[1:] if k != "" and k not in where]
        if missing:
            raise WarmStartError(
                f"cannot warm-start from run {run}: {len(missing)} {kind} key(s) of the base run are not in the new "
                f"table's ref.vocab (e.g. {', '.join(map(repr, missing[:5]))}); their weights would be lost "
                "or re-used by other ids: retrain from scratch")
        plan.new_length[kind] = len(new)
        plan.mapping[kind] = np.array([0] + [where.get(k, 0) for k in old[1:]], dtype=np.int64)
        known = set(old)
        plan.added[kind] = [k for k in new[1:] if k != "" and k not in known]
    return plan


def remap_state(base_state: dict, fresh_state: dict, base_sizes: dict, plan: WarmStartPlan) -> dict:
    """The base run's weights on the new ids: a copy of ``fresh_state`` (the new model's
    initialisation) into which every base weight is written at its key's new id.

    An axis is a vocabulary axis of a kind when it is the base run's ``<kind> + 1`` long and the
    fresh tensor's axis is the new vocabulary's length (an axis of a non-vocabulary size that
    happens to match keeps its length and is copied as is). Frozen text buffers come from the
    new table (:data:`FRESH_BUFFERS`).

    Raises:
        WarmStartError: a weight is missing or its shape differs on a non-vocabulary axis, or an
            axis could index two kinds; the message names the weight.
    """
    sizes_key = {"category": "categories", "item": "items", "text": "texts"}
    old_len = {k: int(base_sizes[sizes_key[k]]) + 1 for k in VOCAB_KINDS}
    out = {}
    for name, fresh in fresh_state.items():
        if name.split(".")[-1] in FRESH_BUFFERS:
            out[name] = fresh
            continue
        if name not in base_state:
            raise WarmStartError(f"weight {name} of the new model is not in the base run's model")
        old = base_state[name]
        if old.dim() != fresh.dim():
            raise WarmStartError(f"weight {name}: shape {tuple(old.shape)} (base run) vs {tuple(fresh.shape)}")
        src, dst = [], []
        for axis, (a, b) in enumerate(zip(old.shape, fresh.shape)):
            kinds = [k for k in VOCAB_KINDS if a == old_len[k] and b == plan.new_length[k]]
            moves = [plan.copies(k, a) for k in kinds]
            if len(kinds) > 1 and not all(np.array_equal(m[0], moves[0][0]) and np.array_equal(m[1], moves[0][1])
                                          for m in moves):
                raise WarmStartError(f"weight {name}: axis {axis} of length {a} could index "
                                     f"{' or '.join(kinds)}; cannot map it unambiguously")
            if kinds:
                src.append(np.asarray(moves[0][0], dtype=np.int64)), dst.append(np.asarray(moves[0][1], dtype=np.int64))
            elif a == b:
                src.append(np.arange(a)), dst.append(np.arange(a))
            else:
                raise WarmStartError(f"weight {name}: axis {axis} is {a} long (base run) vs {b} (new model) "
                                     "and is not a vocabulary axis")
        value = fresh.clone()
        if old.dim() == 0:
            value = old.clone()
        else:
            value[np.ix_(*dst)] = old[np.ix_(*src)].to(value.dtype)
        out[name] = value
    return out
