"""Typed configuration: YAML base + environment overlay + command-line overrides.

Precedence (later wins): ``conf/base.yml`` < ``conf/<env>.yml`` < ``--conf-file`` < ``--set a.b=c``.
Every key has a default in :mod:`.sections` and a comment in ``conf/base.yml`` (a model's in
``conf/models/<name>.yml``); an unknown key or a value of the wrong type is a
:class:`ConfigError` that names the key and the file it came from.

Modules: :mod:`.core` (files, typed merge, :class:`Limit`), :mod:`.sections` (the dataclasses),
:mod:`.models` (the model registry and the ``models`` section), :mod:`.validation` (:data:`LIMITS`
and the other checks), :mod:`.loading` (:func:`load_config`).
"""

from interest_lib.conf.core import CONF_DIR, ENVIRONMENTS, ConfigError, Limit
from interest_lib.conf.loading import load_config
from interest_lib.conf.models import ModelsConf, ModelSpec, model_names, model_spec
from interest_lib.conf.sections import (
    Config, EmbeddingsConf, EvaluateConf, FeaturesConf, GenerateConf, IngestConf, MigrationConf,
    MonitorConf, PrivacyConf, ReportConf, RunConf, ScoreConf, SequencesConf, SessionizeConf, SparkConf, StagesConf,
    StorageConf, StreamConf, TrackingConf, TrainConf,
)
from interest_lib.conf.validation import LIMITS, SCORE_SOURCES, TARGET_METRICS, parsed_setting

__all__ = [
    "CONF_DIR", "ENVIRONMENTS", "ConfigError", "Limit", "load_config", "ModelsConf", "ModelSpec",
    "model_names", "model_spec", "Config", "EmbeddingsConf", "EvaluateConf", "FeaturesConf",
    "GenerateConf", "IngestConf", "MigrationConf", "MonitorConf", "PrivacyConf", "ReportConf", "RunConf", "ScoreConf",
    "SequencesConf", "SessionizeConf", "SparkConf", "StagesConf", "StorageConf", "StreamConf", "TrackingConf",
    "TrainConf", "LIMITS", "SCORE_SOURCES", "TARGET_METRICS", "parsed_setting",
]
