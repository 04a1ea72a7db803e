"""Model registry: each model is one module of this package, found by the name in conf.

``train.migration_model`` / ``train.evolution_model`` name a model; its hyper-parameters are the
block of the same name under ``models:`` in the configuration. Baselines live in
:mod:`interest_lib.models.baselines` (numpy only).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from interest_lib.sequence_contract import (  # noqa: F401  (re-exported: the models' inputs)
    FIRST_EVENT_BUCKET, INTERVAL_BUCKETS, NUM_INTERVAL_BUCKETS, default_session_bucket,
    interval_bucket_of,
)

#: Registered models: name -> (module, task). The module defines ``Model`` (a torch module).
MODELS = {
    "migration_transformer": ("interest_lib.models.migration_transformer", "migration"),
    "migration_augru": ("interest_lib.models.migration_augru", "migration"),
    "evolution_gru": ("interest_lib.models.evolution_gru", "evolution"),
}
TASKS = ("migration", "evolution")

#: Columns of gold.training_sequences the models read (inputs) and learn (labels), in one place.
EVENT_COLUMNS = ["ev_category", "ev_item", "ev_type", "ev_interval", "ev_text"]
WINDOW_COLUMNS = ["win_category", "win_share"]
INPUT_COLUMNS = EVENT_COLUMNS + WINDOW_COLUMNS
MIGRATION_LABELS = ["next_category", "is_switch"]
EVOLUTION_LABELS = ["next_dist_category", "next_dist_share", "next_stage"]
#: Every model column: what evaluation and baseline fitting load.
SEQUENCE_COLUMNS = INPUT_COLUMNS + MIGRATION_LABELS + EVOLUTION_LABELS

@dataclass
class InputSizes:
    """Shapes of the model inputs: the largest index of each id kind in ref.vocab (0 is
    padding; sizes the embedding tables) and the top categories kept per window."""

    categories: int
    items: int
    texts: int
    top_k: int = 5
    event_types: int = 7
    intervals: int = NUM_INTERVAL_BUCKETS
    session_bucket: int = field(default_factory=default_session_bucket)
    """First ``ev_interval`` bucket that starts a session (from ``sessionize.gap_minutes``,
    :mod:`interest_lib.sequence_contract`); saved with the model."""


def model_task(name: str) -> str:
    """``migration`` or ``evolution``: what the named model predicts."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(MODELS)}")
    return MODELS[name][1]


def model_class(name: str) -> type:
    """The ``Model`` class of a registered model (imports torch)."""
    model_task(name)
    return importlib.import_module(MODELS[name][0]).Model


def build_model(name: str, params, vocab: InputSizes, text_matrix=None):
    """A fresh model: ``params`` is the model's block of ``conf.models``; ``text_matrix`` an
    optional (item vectors, text vectors) pair of float arrays aligned with the vocabulary."""
    return model_class(name)(params, vocab, text_matrix)
