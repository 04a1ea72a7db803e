"""The models: each one is a module of this package plus its YAML of defaults, found by name.

Adding a model = ``interest_lib/models/<name>.py`` (``Model`` with its ``task``, ``Params`` and
optionally ``LIMITS``) + ``conf/models/<name>.yml``; nothing else lists it (the registry is
:mod:`interest_lib.conf.models`). ``train.migration_model`` / ``train.evolution_model`` name a
model; its hyper-parameters are ``conf.models.<name>``. Baselines live in
:mod:`interest_lib.models.baselines` (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from interest_lib.conf.models import TASKS, model_names, model_spec
from interest_lib.sequence_contract import (  # noqa: F401  (re-exported: the models' inputs)
    FIRST_EVENT_BUCKET, INTERVAL_BUCKETS, NUM_INTERVAL_BUCKETS, default_session_bucket,
    interval_bucket_of,
)

__all__ = ["TASKS", "registered_models", "model_task", "model_class", "model_params", "build_model", "InputSizes"]

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


def registered_models(task: Optional[str] = None, conf_dir=None) -> list[str]:
    """Names of the registered models, of one ``task`` when given (that imports their modules)."""
    return [n for n in model_names(conf_dir) if task is None or model_spec(n, conf_dir).task == task]


def model_task(name: str) -> str:
    """``migration`` or ``evolution``: what the named model predicts."""
    return model_spec(name).task


def model_class(name: str) -> type:
    """The ``Model`` class of a registered model (imports torch)."""
    return model_spec(name).model


def model_params(name: str):
    """The model's ``Params`` with its defaults (conf/models/<name>.yml)."""
    from interest_lib.conf.models import ModelsConf

    return ModelsConf().get(name)


def build_model(name: str, params, vocab: InputSizes, text_matrix=None):
    """A fresh model: ``params`` is the model's block of ``conf.models``; ``text_matrix`` an
    optional (item vectors, text vectors) pair of float arrays aligned with the vocabulary."""
    return model_class(name)(params, vocab, text_matrix)
