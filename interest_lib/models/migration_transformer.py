"""Migration model (default): a small causal Transformer over the user's recent events.

SASRec / TiSASRec family: each event is category + item + event type + time-interval bucket +
position (+ projected text embeddings); causal self-attention; the most recent position's state
feeds two heads: the next-category distribution (tied to the category embeddings, with learned
weights on the decayed-history and cut-off-window priors, plus a per-category score from each
category's own event and window history by an MLP shared by all categories, see
:class:`~interest_lib.models.common.CategoryScorer`) and P(switch to a category outside the
cut-off window). Every earlier position also predicts its successor (auxiliary loss).
Hyper-parameters: ``models.migration_transformer`` in the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interest_lib.conf import Limit
from interest_lib.models.common import (
    CategoryScorer, EventEncoder, MigrationModelBase, NextCategoryHead, category_features, recent_inputs,
)


@dataclass
class Params:
    """Causal Transformer over recent events (SASRec / TiSASRec family)."""

    d_model: int = 64
    """Width of every embedding and hidden state."""
    heads: int = 2
    """Attention heads."""
    layers: int = 2
    """Transformer blocks."""
    dropout: float = 0.1
    """Dropout in embeddings and blocks."""
    use_text: bool = True
    """Add the items' and event texts' sentence embeddings (projected) to each event."""
    switch_weight: float = 0.3
    """Weight of the P(switch) loss."""
    aux_weight: float = 0.5
    """Weight of the next-event loss at every earlier position (denser supervision)."""
    max_windows: int = 8
    """Read only the last this many window profiles (0 = all of sequences.max_windows): the
    evolution model reads 32, this model gained nothing from them on Complete Journey and took
    1.8x longer per epoch."""


#: Parameters added after the first release, with the value that reproduces the model as it was
#: before them (a model.pt saved earlier loads as the network it trained).
ADDED_PARAMS = {"max_windows": 0}


#: Accepted values, checked when the configuration loads.
LIMITS = {"d_model": Limit(ge=1), "heads": Limit(ge=1), "layers": Limit(ge=1), "dropout": Limit(ge=0, lt=1),
          "max_windows": Limit(ge=0)}


class Model(MigrationModelBase):
    """Causal Transformer with next-category and P(switch) heads."""

    def __init__(self, params, vocab, text_matrix=None):
        super().__init__(params, vocab)
        d = params.d_model
        self.encoder = EventEncoder(vocab, d, params.dropout,
                                    text_matrix=text_matrix if params.use_text else None)
        layer = nn.TransformerEncoderLayer(d, params.heads, 4 * d, params.dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, params.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        self.window_proj = nn.Linear(vocab.categories + 1, d)
        self.head = NextCategoryHead(self.encoder.category, d)
        self.scorer = CategoryScorer(d)
        self.switch = nn.Linear(d + 1, 1)

    def forward(self, batch: dict) -> dict:
        """logits [B, C+1] of the next category, switch_logit [B], aux_logits [B, L, C+1], mask."""
        batch = recent_inputs(batch, self.vocab.top_k, windows=self.params.max_windows)
        x, mask = self.encoder(batch)
        length = x.shape[1]
        # Causal, and padding keys hidden from every query but themselves (no all-masked rows).
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=x.device), 1)
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        blocked = causal | (~mask[:, None, :] & ~eye)
        attn = blocked.repeat_interleave(self.params.heads, 0)
        h = self.final_norm(self.blocks(x, mask=attn))
        history, window = self.priors(batch)
        last = h[:, -1] + self.window_proj(window)
        features = category_features(batch, self.vocab.categories, self.vocab.top_k, self.vocab.session_bucket)
        logits = self.head(last, history, window) + self.scorer(features, last)
        stay = (torch.softmax(logits, -1) * (window > 0)).sum(-1, keepdim=True)
        return {
            "logits": logits,
            "switch_logit": self.switch(torch.cat([last, torch.logit(stay.clamp(1e-4, 1 - 1e-4))], -1)).squeeze(-1),
            "aux_logits": self.head(h),
            "mask": mask,
        }
