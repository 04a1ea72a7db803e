"""Evolution model: a GRU over the user's last window interest vectors.

Forecasts the next window's category distribution (trained on the Jensen-Shannon divergence to
the label window) and the stage of the next window's top interest. The forecast is one softmax
over a per-category score from that category's own history (its share and new interest in each
of the last windows, recency-weighted averages, its frequency in the recent events and sessions;
see :func:`~interest_lib.models.common.category_features`), by an MLP shared by all categories
with the GRU state as context (how a rising, fading, one-off or long-standing interest carries
into the next window, learned once for every category), plus the last window as a prior, plus a
category-to-category transition from the last window's interests (rules tied to particular
categories: a season's garden interest turning into swimwear). The transition starts at zero and
reads only the last window: a free distribution from the GRU state, which it replaces, overfitted
on the default store (12k samples for ~80 categories: test JS 1 point worse). The scorer also reads
a small learned vector per category (``category_dim``: a staple bought every week and a monthly
refill age differently), and the GRU reads each window's top-K mass before renormalisation
(``window_mass``: a profile whose top five hold 90% carries into the next window differently
from one whose top five hold 30%). On Complete Journey's validation week each added about 0.7
and 0.1 points of JS gain over persistence, the longer history (``sequences.max_windows`` 32
instead of 8) 0.5, the weights' moving average (``train.ema_decay``) 0.1-0.3.

The stage is that of the next window's top interest, which the stage rules
(:mod:`interest_lib.features.stages`) derive from that category's own trajectory: its share now
against its share a few windows back, how many recent windows held it, whether it was ever an
interest. So the stage head reads the history features of the category the forecast ranks first
(the same per-category features as the scorer), its forecast share and the runner-up's (how sure
the forecast is of its top), beside the GRU state. A head on the GRU state alone predicted the
majority stage for almost every user.
Hyper-parameters: ``models.evolution_gru``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from interest_lib.conf import Limit
from interest_lib.models import EVOLUTION_LABELS, WINDOW_COLUMNS
from interest_lib.models.common import (
    NUM_CATEGORY_FEATURES, NUM_STAGES, CategoryScorer, category_features,
    dense_distribution, js_divergence, log_prior, mask_padding, recent_inputs, window_distributions,
)


@dataclass
class Params:
    """GRU over the last window interest vectors: next window's distribution and stage."""

    hidden: int = 64
    """Width of the window projection and GRU state."""
    dropout: float = 0.1
    """Dropout on the window projection."""
    stage_weight: float = 0.3
    """Weight of the stage cross-entropy beside the JS-divergence forecast loss."""
    scorer_hidden: int = 64
    """Width of the per-category scorer MLP (shared by all categories)."""
    stage_hidden: int = 64
    """Width of the stage head's hidden layer."""
    window_mass: bool = True
    """Also give the GRU each window's top-K mass (the share of the profile its top categories
    hold before renormalisation: how concentrated the profile is)."""
    max_events: int = 0
    """Read only the last this many events of each sequence (0 = all of sequences.max_events)."""
    category_dim: int = 8
    """Width of a learned per-category vector the scorer reads beside the category's history
    features (0 = the scorer is identity-free)."""


#: Parameters added after the first release, with the value that reproduces the model as it was
#: before them: a model.pt saved earlier (without these keys) loads as the network it trained.
ADDED_PARAMS = {"window_mass": False, "max_events": 0, "category_dim": 0}

#: Accepted values, checked when the configuration loads.
LIMITS = {"hidden": Limit(ge=1), "dropout": Limit(ge=0, lt=1), "scorer_hidden": Limit(ge=1),
          "stage_hidden": Limit(ge=1), "category_dim": Limit(ge=0),
          "max_events": Limit(ge=0)}


class Model(nn.Module):
    """Next-window distribution and stage from the window interest vectors and recent events."""

    task = "evolution"
    columns = ["ev_category", "ev_interval"] + WINDOW_COLUMNS + EVOLUTION_LABELS

    def __init__(self, params, vocab, text_matrix=None):
        super().__init__()
        self.params, self.vocab = params, vocab
        c, d = vocab.categories + 1, params.hidden
        self.proj = nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Dropout(params.dropout))
        self.gru = nn.GRU(d + (1 if params.window_mass else 0), d, batch_first=True)
        self.scorer = CategoryScorer(d, hidden=params.scorer_hidden, categories=vocab.categories,
                                     category_dim=params.category_dim)
        self.transition = nn.Linear(c, c, bias=False)
        nn.init.zeros_(self.transition.weight)
        # Starts from persistence (the last window as logits), so even a few steps on a small
        # data set give a sensible forecast; training learns how far to move away from it.
        self.persistence_gain = nn.Parameter(torch.tensor(1.0))
        self.stage = nn.Sequential(nn.Linear(d + 2 * NUM_CATEGORY_FEATURES + 2, params.stage_hidden), nn.GELU(),
                                   nn.Linear(params.stage_hidden, NUM_STAGES))

    def forward(self, batch: dict) -> dict:
        """forecast [B, C+1] (a distribution) and stage_logits [B, NUM_STAGES]."""
        batch = recent_inputs(batch, self.vocab.top_k, events=self.params.max_events)
        windows = window_distributions(batch, self.vocab.categories, self.vocab.top_k)
        steps = self.proj(windows)
        if self.params.window_mass:
            mass = batch["win_share"].float().reshape(windows.shape[0], windows.shape[1], -1).sum(-1, keepdim=True)
            steps = torch.cat([steps, mass], -1)
        states, _ = self.gru(steps)
        h = states[:, -1]
        last = windows[:, -1]
        features = category_features(batch, self.vocab.categories, self.vocab.top_k, self.vocab.session_bucket)
        top_scaled = last / last.amax(-1, keepdim=True).clamp_min(1e-12)  # the top interest = 1
        logits = (self.scorer(features, h) + self.transition(top_scaled)
                  + self.persistence_gain * log_prior(last))
        forecast = torch.softmax(mask_padding(logits), -1)
        return {"forecast": forecast, "stage_logits": self.stage(stage_inputs(h, features, forecast))}

    def target(self, batch: dict) -> torch.Tensor:
        """The label window's distribution [B, C+1]."""
        return dense_distribution(batch["next_dist_category"], batch["next_dist_share"], self.vocab.categories)

    def loss(self, batch: dict, out: dict):
        """(JS divergence of the forecast + weighted stage cross-entropy, logged parts)."""
        js = js_divergence(out["forecast"], self.target(batch)).mean()
        known = batch["next_stage"] != 0
        stage = (F.cross_entropy(out["stage_logits"][known], batch["next_stage"][known])
                 if known.any() else js * 0.0)
        loss = js + self.params.stage_weight * stage
        return loss, {"loss": loss.detach(), "js": js.detach(), "stage_ce": stage.detach()}

    @torch.no_grad()
    def predict(self, batch: dict) -> dict:
        """Evaluation / scoring outputs: forecast distribution [B, C+1] and stage index [B]."""
        out = self(batch)
        stage_logits = out["stage_logits"].clone()
        stage_logits[:, 0] = float("-inf")
        return {"forecast": out["forecast"], "stage": stage_logits.argmax(-1)}


def stage_inputs(h: torch.Tensor, features: torch.Tensor, forecast: torch.Tensor) -> torch.Tensor:
    """The stage head's input [B, H + 2F + 2]: the GRU state, the history features [B, 2F] of the
    category the forecast ranks first, and the forecast's top two shares. The forecast enters
    detached: the stage loss reads it but does not reshape it."""
    top2 = forecast.detach()[:, 1:].topk(2, dim=-1)
    top = top2.indices[:, 0] + 1
    own = features[torch.arange(len(top), device=top.device), top]
    return torch.cat([h, own, top2.values], -1)
