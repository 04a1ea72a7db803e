"""Evolution model: a GRU over the user's last window interest vectors.

Forecasts the next window's category distribution (trained on the Jensen-Shannon divergence to
the label window) and the stage of the next window's top interest. The forecast is a per-user
gated mixture of three distributions: the last window ("persistence"), the mean of the user's
windows (the long-run interest), and a free distribution from the GRU state (what is new). A
mixture keeps the forecast as sparse as the profiles it mixes, where smoothing logits would
spread mass over every category. Hyper-parameters: ``models.evolution_gru``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from interest_lib.models.common import (
    EVOLUTION_LABELS, NUM_STAGES, WINDOW_COLUMNS, dense_distribution, js_divergence, mask_padding,
    window_distributions,
)


class Model(nn.Module):
    """Next-window distribution and stage from the sequence of window interest vectors."""

    task = "evolution"
    columns = WINDOW_COLUMNS + EVOLUTION_LABELS

    def __init__(self, params, vocab, text_matrix=None):
        super().__init__()
        self.params, self.vocab = params, vocab
        c, d = vocab.categories + 1, params.hidden
        self.proj = nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Dropout(params.dropout))
        self.gru = nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(d, c)
        self.gate = nn.Linear(d, 3)
        self.stage = nn.Linear(d + c, NUM_STAGES)

    def forward(self, batch: dict) -> dict:
        """forecast [B, C+1] (a distribution) and stage_logits [B, NUM_STAGES]."""
        windows = window_distributions(batch, self.vocab.categories, self.vocab.top_k)
        states, _ = self.gru(self.proj(windows))
        h = states[:, -1]
        present = (windows.sum(-1, keepdim=True) > 0).float()
        mean = (windows * present).sum(1) / present.sum(1).clamp_min(1.0)
        parts = torch.stack([windows[:, -1], mean, torch.softmax(mask_padding(self.out(h)), -1)], 1)
        forecast = (torch.softmax(self.gate(h), -1)[:, :, None] * parts).sum(1)
        return {"forecast": forecast, "stage_logits": self.stage(torch.cat([h, forecast], -1))}

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
