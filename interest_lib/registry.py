"""Pluggable parts by name: distributed backends (``train.backend``), feeds (``train.feed``) and
the parsers of settings with a syntax of their own, each registered as a ``"module:attribute"``
path and imported only when used.

Listing them imports nothing, so the configuration takes its choices from here without
importing torch, and the optional implementations (Horovod, Petastorm: card environment only)
stay out of every other environment. Models are registered by their files instead, see
:mod:`interest_lib.conf.models`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: ``train.backend`` -> the :class:`~interest_lib.training.backend.Backend` class.
BACKENDS: dict[str, str] = {
    "torch_distributor": "interest_lib.training.backend:TorchDistributorBackend",
    "horovod": "interest_lib.training.horovod_backend:HorovodBackend",  # card env only: scripts/install_card_env.sh
    "driver": "interest_lib.training.backend:DriverBackend",  # one rank in the driver process: no torchrun
}

#: ``train.feed`` -> the :class:`~interest_lib.training.feed.Feed` class.
FEEDS: dict[str, str] = {
    "delta": "interest_lib.training.feed:DeltaArrowFeed",
    "petastorm": "interest_lib.training.petastorm_feed:PetastormFeed",  # card env only: scripts/install_card_env.sh
}


#: Settings whose value is a small language of its own, by dotted key -> the parser (``text ->
#: value``, raising ValueError saying what is wrong) of the module that owns it. The configuration
#: checks them when loaded, importing the parser only for a value that is set.
SETTING_PARSERS: dict[str, str] = {
    "score.event_ranker": "interest_lib.evaluate.event_benchmark:ranker_params",  # RankerParams as key=value,...
}


def resolve(target: str) -> Any:
    """The object a ``"package.module:attribute"`` path names (imports the module)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
