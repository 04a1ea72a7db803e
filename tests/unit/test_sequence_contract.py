"""The sequence contract lives below the stages: the featurize job and the models share the
interval buckets without features importing models, and the session rule the models use comes
from ``sessionize.gap_minutes`` (recorded with the model), not a constant of their own."""

from __future__ import annotations

import ast
import pathlib

import pytest
import torch

from interest_lib.conf import SessionizeConf
from interest_lib.models import InputSizes
from interest_lib.models.common import category_features, session_history
from interest_lib.sequence_contract import (
    FIRST_EVENT_BUCKET, default_session_bucket, interval_bucket_of, new_session_bucket,
)

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2] / "interest_lib"


def test_the_default_session_rule_is_the_sessionize_default():
    assert default_session_bucket() == new_session_bucket(SessionizeConf().gap_minutes)
    assert InputSizes(categories=3, items=3, texts=0).session_bucket == default_session_bucket()
    assert new_session_bucket(30) == interval_bucket_of(1800) == 5
    assert new_session_bucket(5) == interval_bucket_of(300) == 4


def test_the_models_cut_sessions_where_the_configured_gap_says():
    # events: c1 (first), c1 after 10 minutes, c2 after 10 minutes, c2 after an hour
    cats = torch.tensor([[1, 1, 2, 2]])
    gaps = torch.tensor([[FIRST_EVENT_BUCKET, interval_bucket_of(600), interval_bucket_of(600),
                          interval_bucket_of(3600)]])
    thirty = session_history(cats, gaps, 2, float("inf"), new_session_bucket(30))[0]
    five = session_history(cats, gaps, 2, float("inf"), new_session_bucket(5))[0]
    # 30 minutes: sessions {1, 1, 2} and {2}, each counting once -> c1 2/3, c2 1/3 + 1
    assert torch.allclose(thirty[1:], torch.tensor([1 / 3, 2 / 3]))
    # 5 minutes: every event is a session -> two each
    assert torch.allclose(five[1:], torch.tensor([0.5, 0.5]))
    batch = {"ev_category": cats, "ev_interval": gaps, "win_category": torch.tensor([[1, 2]]),
             "win_share": torch.tensor([[0.5, 0.5]])}
    assert not torch.equal(category_features(batch, 2, 2, new_session_bucket(30)),
                           category_features(batch, 2, 2, new_session_bucket(5)))


def test_features_no_longer_import_models():
    for path in sorted((ROOT / "features").glob("*.py")):
        modules = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(a.name for a in node.names)
        assert not any(m.startswith("interest_lib.models") for m in modules), path.name
