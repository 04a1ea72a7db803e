"""Adding a model is one module and one YAML file: a toy model written that way (into a temporary
folder, made importable as interest_lib.models.toy_mean) is found by the registry, configured and
checked like the others, and passes the model tests that are parametrised over the registry."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

import interest_lib.models
from interest_lib.conf import CONF_DIR, ConfigError, core, load_config, model_names
from interest_lib.models import registered_models
from tests.unit import test_models
from tests.unit.test_models import one_thread  # noqa: F401  (fixture: small models run fastest on one thread)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]

TOY_MODULE = '''"""Toy migration model: the running mean of the event encodings plus the newest event."""

from dataclasses import dataclass

from torch import nn

from interest_lib.conf import Limit
from interest_lib.models.common import EventEncoder, MigrationModelBase, NextCategoryHead


@dataclass
class Params:
    """Hyper-parameters of the toy model."""

    hidden: int = 16
    """Width of the event encodings."""
    dropout: float = 0.1
    """Dropout on the event encodings."""
    use_text: bool = True
    """Add the projected text embeddings."""
    switch_weight: float = 0.3
    """Weight of the P(switch) loss."""
    aux_weight: float = 0.5
    """Weight of the next-event loss."""


LIMITS = {"hidden": Limit(ge=1), "dropout": Limit(ge=0, lt=1)}


class Model(MigrationModelBase):
    """Running mean of the events (causal) + the newest event -> next category, P(switch)."""

    def __init__(self, params, vocab, text_matrix=None):
        super().__init__(params, vocab)
        self.encoder = EventEncoder(vocab, params.hidden, params.dropout,
                                    text_matrix=text_matrix if params.use_text else None)
        self.head = NextCategoryHead(self.encoder.category, params.hidden)
        self.switch = nn.Linear(params.hidden, 1)

    def forward(self, batch):
        x, mask = self.encoder(batch)
        x = x * mask[..., None]
        h = x.cumsum(1) / mask.cumsum(1).clamp_min(1)[..., None] + x
        history, window = self.priors(batch)
        return {"logits": self.head(h[:, -1], history, window), "switch_logit": self.switch(h[:, -1]).squeeze(-1),
                "aux_logits": self.head(h), "mask": mask}
'''

TOY_YML = """# toy_mean: a test's toy migration model (tests/unit/test_model_registry.py).
hidden: 16                    # width of the event encodings
dropout: 0.1                  # dropout on the event encodings
use_text: true                # add the projected text embeddings
switch_weight: 0.3            # weight of the P(switch) loss
aux_weight: 0.5               # weight of the next-event loss
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The two files of a new model, in a copy of the project: the module in a folder added to
    interest_lib.models' search path, the YAML in conf/models/."""
    package = tmp_path / "models"
    package.mkdir()
    (package / "toy_mean.py").write_text(TOY_MODULE)
    monkeypatch.setattr(interest_lib.models, "__path__", [*interest_lib.models.__path__, str(package)])
    conf_dir = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf_dir)
    (conf_dir / "models" / "toy_mean.yml").write_text(TOY_YML)
    monkeypatch.setattr(core, "CONF_DIR", conf_dir)  # the project's conf/ folder, as if edited
    yield "toy_mean"
    sys.modules.pop("interest_lib.models.toy_mean", None)


def test_a_new_model_is_one_module_and_one_yaml(toy):
    assert toy in model_names() and toy not in model_names(CONF_DIR)
    # The model tests' parametrisation (test_models.MIGRATION is registered_models("migration")).
    assert toy in registered_models("migration") and toy not in registered_models("evolution")
    conf = load_config(overrides=["train.migration_model=toy_mean", "models.toy_mean.hidden=8"])
    assert conf.train.migration_model == toy and conf.models.toy_mean.hidden == 8
    assert conf.models.toy_mean.aux_weight == 0.5  # from its YAML
    with pytest.raises(ConfigError, match=r"key 'models\.toy_mean\.hidden' is 0: must be >= 1"):
        load_config(overrides=["models.toy_mean.hidden=0"])  # its module's LIMITS
    with pytest.raises(ConfigError, match=r"unknown key 'models\.toy_mean\.width'"):
        load_config(overrides=["models.toy_mean.width=8"])


def test_the_model_tests_run_on_the_new_model(toy):
    for text in (False, True):
        test_models.test_predictions_are_distributions(toy, text, torch.Generator().manual_seed(1))
    test_models.test_forward_shapes(toy, torch.Generator().manual_seed(1))
    test_models.test_loss_is_finite_and_gradients_reach_the_embeddings(toy, torch.Generator().manual_seed(1))
    test_models.test_migration_model_learns_a_cyclic_shift(toy, torch.Generator().manual_seed(1))


def test_training_fingerprints_the_new_model(toy):
    from interest_lib.training.job import model_fingerprint

    assert len(model_fingerprint(toy)) == 12


def test_a_model_of_the_other_task_is_refused_when_training_starts():
    """train.*_model accepts any registered name at load time (telling the tasks apart imports
    the models, which loading the configuration never does); training checks the task first."""
    from interest_lib.training.job import run_train

    conf = load_config(overrides=["train.migration_model=evolution_gru"])
    with pytest.raises(ConfigError, match=r"train\.migration_model is 'evolution_gru', which predicts evolution"):
        run_train(None, conf, None, task="migration")
