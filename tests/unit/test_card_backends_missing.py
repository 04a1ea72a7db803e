"""In the default environment the card path (petastorm feed, horovod backend) is not installed:
asking for it is a clear error that says how to get it (scripts/install_card_env.sh)."""

import importlib.util

import pytest

from interest_lib.training.backend import BackendError, make_backend
from interest_lib.training.feed import FeedSpec, make_feed

pytestmark = pytest.mark.unit


@pytest.mark.skipif(importlib.util.find_spec("petastorm") is not None, reason="petastorm is installed (card env)")
def test_petastorm_feed_without_petastorm_says_how_to_install(tmp_path):
    with pytest.raises(ImportError, match="scripts/install_card_env.sh"):
        make_feed("petastorm", FeedSpec(str(tmp_path), 0, "train", ["window"]))


@pytest.mark.skipif(importlib.util.find_spec("horovod") is not None, reason="horovod is installed (card env)")
def test_horovod_backend_without_horovod_says_how_to_install():
    with pytest.raises(BackendError, match="scripts/install_card_env.sh"):
        make_backend("horovod", 2, True, False)


def test_unknown_names_still_list_the_choices(tmp_path):
    with pytest.raises(ValueError, match="petastorm"):
        make_feed("nope", FeedSpec(str(tmp_path), 0, "train", ["window"]))
    with pytest.raises(BackendError, match="horovod"):
        make_backend("nope", 2, True, False)
