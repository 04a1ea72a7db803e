"""Migration model (alternative): GRU interest extractor + attention-gated GRU (DIEN's AUGRU).

The extractor GRU turns events into interest states; each state is trained to predict the next
behaviour (DIEN's auxiliary loss; here a cross-entropy over the next event's category instead
of DIEN's sampled binary loss). Attention of every state against the most recent one scales the
update gate of a second GRU (AUGRU), so interests related to the current one evolve and
unrelated ones fade. Heads as in the Transformer model. Hyper-parameters:
``models.migration_augru``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interest_lib.conf import Limit
from interest_lib.models.common import EventEncoder, MigrationModelBase, NextCategoryHead


@dataclass
class Params:
    """GRU interest extractor + attention-gated GRU (DIEN's AUGRU) over recent events."""

    hidden: int = 64
    """Width of embeddings and GRU states."""
    dropout: float = 0.1
    """Dropout on the event embeddings."""
    use_text: bool = True
    """Add the items' and event texts' sentence embeddings (projected) to each event."""
    switch_weight: float = 0.3
    """Weight of the P(switch) loss."""
    aux_weight: float = 0.5
    """Weight of DIEN's auxiliary loss: each extractor state predicts the next behaviour."""


#: Accepted values, checked when the configuration loads.
LIMITS = {"hidden": Limit(ge=1), "dropout": Limit(ge=0, lt=1)}


class AUGRUCell(nn.Module):
    """GRU cell whose update gate is scaled by an attention score (DIEN, Zhou et al. 2019)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.x2h = nn.Linear(dim, 3 * hidden)
        self.h2h = nn.Linear(hidden, 3 * hidden, bias=False)

    def forward(self, x: torch.Tensor, h: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        xr, xu, xn = self.x2h(x).chunk(3, -1)
        hr, hu, hn = self.h2h(h).chunk(3, -1)
        reset = torch.sigmoid(xr + hr)
        update = att[:, None] * torch.sigmoid(xu + hu)
        candidate = torch.tanh(xn + reset * hn)
        return (1 - update) * h + update * candidate


class Model(MigrationModelBase):
    """DIEN-style interest extractor and AUGRU evolution with next-category and P(switch) heads."""

    def __init__(self, params, vocab, text_matrix=None):
        super().__init__(params, vocab)
        d = params.hidden
        self.encoder = EventEncoder(vocab, d, params.dropout,
                                    text_matrix=text_matrix if params.use_text else None)
        self.extractor = nn.GRU(d, d, batch_first=True)
        self.attention = nn.Bilinear(d, d, 1)
        self.evolution = AUGRUCell(d, d)
        self.window_proj = nn.Linear(vocab.categories + 1, d)
        self.head = NextCategoryHead(self.encoder.category, d)
        self.switch = nn.Linear(2 * d, 1)

    def forward(self, batch: dict) -> dict:
        """logits [B, C+1] of the next category, switch_logit [B], aux_logits [B, L, C+1], mask."""
        x, mask = self.encoder(batch)
        states, _ = self.extractor(x)
        query = states[:, -1:].expand_as(states).contiguous()
        scores = self.attention(states, query).squeeze(-1).masked_fill(~mask, float("-inf"))
        att = torch.softmax(scores, -1).nan_to_num(0.0)
        h = torch.zeros_like(states[:, 0])
        for t in range(states.shape[1]):
            h = self.evolution(states[:, t], h, att[:, t])
        history, window = self.priors(batch)
        last = h + states[:, -1] + self.window_proj(window)
        return {
            "logits": self.head(last, history, window),
            "switch_logit": self.switch(torch.cat([last, self.window_proj(window)], -1)).squeeze(-1),
            "aux_logits": self.head(states),
            "mask": mask,
        }
