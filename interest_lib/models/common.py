"""Building blocks shared by the models (torch): event encoder, history priors, losses.

Inputs are the columns of ``gold.training_sequences`` as tensors (see
:mod:`interest_lib.features.sequences`): event sequences are left-padded with 0, so position
``-1`` is always the most recent event and ``ev_type != 0`` marks real events.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from interest_lib.models import EVENT_COLUMNS, FIRST_EVENT_BUCKET, MIGRATION_LABELS, WINDOW_COLUMNS
from interest_lib.sequence_contract import default_session_bucket
NUM_STAGES = 5  # 0 = unknown, then initial / developing / stable / fading
_EPS = 1e-3


def dense_distribution(idx: torch.Tensor, share: torch.Tensor, num_categories: int) -> torch.Tensor:
    """[B, K] category ids and shares -> [B, C+1] distribution (padding dropped, rows sum to 1;
    an empty row stays all zero)."""
    dense = torch.zeros(idx.shape[0], num_categories + 1, dtype=torch.float32, device=idx.device)
    dense.scatter_add_(1, idx, share.float())
    dense[:, 0] = 0.0
    return dense / dense.sum(1, keepdim=True).clamp_min(1e-12)


def recent_inputs(batch: dict, top_k: int, windows: int = 0, events: int = 0) -> dict:
    """The batch with only its last ``windows`` window profiles and last ``events`` events (0:
    all), exactly what a table built with those lengths holds (both are left-padded)."""
    out = dict(batch)
    if windows:
        out.update({k: batch[k][:, -windows * top_k:] for k in WINDOW_COLUMNS if k in batch})
    if events:
        out.update({k: batch[k][:, -events:] for k in EVENT_COLUMNS if k in batch})
    return out


def window_distributions(batch: dict, num_categories: int, top_k: int) -> torch.Tensor:
    """The W window profiles of each row as dense distributions [B, W, C+1], oldest first."""
    idx, share = batch["win_category"], batch["win_share"]
    b, wk = idx.shape
    w = wk // top_k
    dense = dense_distribution(idx.reshape(b * w, top_k), share.reshape(b * w, top_k), num_categories)
    return dense.reshape(b, w, num_categories + 1)


def decayed_history(categories: torch.Tensor, num_categories: int, half_life: float = 10.0) -> torch.Tensor:
    """Recency-decayed category frequencies of the event sequence, [B, C+1], rows sum to 1."""
    length = categories.shape[1]
    age = torch.arange(length - 1, -1, -1, device=categories.device, dtype=torch.float32)
    weight = (0.5 ** (age / half_life)).expand_as(categories) * (categories != 0)
    hist = torch.zeros(categories.shape[0], num_categories + 1, device=categories.device)
    hist.scatter_add_(1, categories, weight)
    hist[:, 0] = 0.0
    return hist / hist.sum(1, keepdim=True).clamp_min(1e-12)


#: Windows of per-category trajectory :func:`category_features` gives (older ones are dropped,
#: missing ones are zeros), so the scorer's input width does not depend on ``max_windows``.
TRAJECTORY_WINDOWS = 8
_EVENT_HALF_LIVES = (3.0, 10.0, 30.0)
_SESSION_HALF_LIVES = (1.0, 2.0, 4.0, float("inf"))
#: Per-category history features of :func:`category_features` (their count, then as many logs).
NUM_CATEGORY_FEATURES = 8 + len(_EVENT_HALF_LIVES) + 1 + 2 * TRAJECTORY_WINDOWS + len(_SESSION_HALF_LIVES)


def session_history(categories: torch.Tensor, intervals: torch.Tensor, num_categories: int,
                    half_life: float, session_bucket: Optional[int] = None) -> torch.Tensor:
    """Category frequencies over the event sequence's sessions, [B, C+1], rows sum to 1.

    Each session counts once whatever its length (its events share its weight), and sessions
    are weighted ``0.5 ** (sessions_back / half_life)`` (the last one 1; ``inf`` = all equal).
    Sessions start at the first event and at interval buckets from ``session_bucket`` up (the
    model's ``vocab.session_bucket``, from ``sessionize.gap_minutes``; default: the default
    gap's). Users browse one interest per session, so a session, not an event, is one draw of
    the user's current interests.
    """
    real = (categories != 0).float()
    session_bucket = default_session_bucket() if session_bucket is None else session_bucket
    starts = ((intervals >= session_bucket) | (intervals == FIRST_EVENT_BUCKET)).long()
    # Sessions after each event's own: 0 for the most recent session.
    back = torch.flip(torch.cumsum(torch.flip(starts, [1]), 1), [1]) - starts
    back = back.clamp(0, categories.shape[1] - 1)
    size = torch.zeros_like(real).scatter_add_(1, back, real).gather(1, back).clamp_min(1.0)
    weight = real / size * 0.5 ** (back.float() / half_life)
    hist = torch.zeros(categories.shape[0], num_categories + 1, device=categories.device)
    hist.scatter_add_(1, categories, weight)
    hist[:, 0] = 0.0
    return hist / hist.sum(1, keepdim=True).clamp_min(1e-12)


def _last_windows(x: torch.Tensor, n: int) -> torch.Tensor:
    """The last ``n`` entries of the last axis, left-padded with zeros when there are fewer."""
    return F.pad(x, (max(0, n - x.shape[-1]), 0))[..., -n:]


def category_features(batch: dict, num_categories: int, top_k: int,
                      session_bucket: Optional[int] = None) -> torch.Tensor:
    """What each row's history says about each category, [B, C+1, 2 * NUM_CATEGORY_FEATURES].

    Per category: its share in the last three window profiles; the last two windows' new
    interest (profile minus half the previous one, clipped at 0: a window profile carries half of
    the previous one, so this estimates the window's own events); recency-weighted averages of
    its share over all windows (weights 0.5 and 0.8 per window back); the share of windows that
    hold it; when the batch has events, its decayed frequency in the event sequence (half-lives
    of 3, 10 and 30 events) and whether it is the last event's category; its whole trajectory
    (share and new interest in each of the last :data:`TRAJECTORY_WINDOWS` windows); and, when
    the batch has interval buckets, its frequency over sessions (:func:`session_history`,
    half-lives of 1, 2, 4 and all sessions). Then the log of each.
    The features do not depend on the category's identity, so one network scores every category
    (and a category a user has never shown scores from its zeros).
    """
    windows = window_distributions(batch, num_categories, top_k).transpose(1, 2)  # [B, C+1, W]
    present = (windows.sum(1, keepdim=True) > 0).float()
    prev = F.pad(windows, (1, 0))[..., :-1]
    fresh = (windows - 0.5 * prev).clamp_min(0.0)
    back = torch.arange(windows.shape[-1] - 1, -1, -1, device=windows.device, dtype=torch.float32)
    def average(decay: float) -> torch.Tensor:
        weight = decay ** back * present
        return (windows * weight).sum(-1) / weight.sum(-1).clamp_min(1e-12)
    parts = [windows[..., -1], prev[..., -1], prev[..., -2] if windows.shape[-1] > 1 else prev[..., -1],
             fresh[..., -1], fresh[..., -2] if windows.shape[-1] > 1 else fresh[..., -1],
             average(0.5), average(0.8), (windows > 0).float().sum(-1) / present.sum(-1).clamp_min(1.0)]
    zeros = torch.zeros_like(parts[0])
    if "ev_category" in batch:
        cats = batch["ev_category"]
        parts += [decayed_history(cats, num_categories, h) for h in _EVENT_HALF_LIVES]
        last = zeros.scatter(1, cats[:, -1:], 1.0)
        parts.append(last * (cats[:, -1:] != 0))
    else:
        parts += [zeros] * (len(_EVENT_HALF_LIVES) + 1)
    parts += list(_last_windows(windows, TRAJECTORY_WINDOWS).unbind(-1))
    parts += list(_last_windows(fresh, TRAJECTORY_WINDOWS).unbind(-1))
    if "ev_category" in batch and "ev_interval" in batch:
        parts += [session_history(batch["ev_category"], batch["ev_interval"], num_categories, h, session_bucket)
                  for h in _SESSION_HALF_LIVES]
    else:
        parts += [zeros] * len(_SESSION_HALF_LIVES)
    x = torch.stack(parts, -1)
    return torch.cat([x, log_prior(x)], -1)


class CategoryScorer(nn.Module):
    """Logits [B, C+1] from each category's history features (:func:`category_features`) and a
    per-row context vector, through one small MLP shared by all categories: it learns how a
    history (rising, fading, one-off, long-standing) predicts the next period, whatever the
    category, so it generalises across categories and to users with little history."""

    def __init__(self, context_dim: int, hidden: int = 32, context_width: int = 16,
                 categories: int = 0, category_dim: int = 0):
        super().__init__()
        self.context = nn.Linear(context_dim, context_width)
        # Optional: a small learned vector per category beside its identity-free features, so
        # the MLP can learn category-specific dynamics (a staple bought weekly, a monthly refill).
        self.identity = nn.Embedding(categories + 1, category_dim) if category_dim > 0 else None
        self.mlp = nn.Sequential(nn.Linear(2 * NUM_CATEGORY_FEATURES + context_width + category_dim, hidden),
                                 nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        ctx = self.context(context)[:, None].expand(-1, features.shape[1], -1)
        parts = [features, ctx]
        if self.identity is not None:
            parts.append(self.identity.weight[None].expand(features.shape[0], -1, -1))
        return self.mlp(torch.cat(parts, -1)).squeeze(-1)


def log_prior(dist: torch.Tensor) -> torch.Tensor:
    """log(dist + eps): a distribution as additive logits (the models learn how much to trust it)."""
    return torch.log(dist + _EPS)


def mask_padding(logits: torch.Tensor) -> torch.Tensor:
    """Column 0 (padding) can never be predicted."""
    return logits.masked_fill(
        torch.arange(logits.shape[-1], device=logits.device) == 0, float("-inf"))


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between rows of two distributions."""
    m = 0.5 * (p + q)
    def kl(a, b):
        return torch.where(a > 0, a * (torch.log2(a.clamp_min(1e-12)) - torch.log2(b.clamp_min(1e-12))), 0.0).sum(-1)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


class EventEncoder(nn.Module):
    """One vector per event: category + item + event type + time-interval bucket + position
    (counted back from the most recent event), plus the projected sentence embeddings of the
    item's text and the event's own text (search query, review) when given."""

    def __init__(self, vocab, dim: int, dropout: float, max_len: int = 512,
                 text_matrix: Optional[tuple] = None):
        super().__init__()
        self.category = nn.Embedding(vocab.categories + 1, dim, padding_idx=0)
        self.item = nn.Embedding(vocab.items + 1, dim, padding_idx=0)
        self.event_type = nn.Embedding(vocab.event_types + 1, dim, padding_idx=0)
        self.interval = nn.Embedding(vocab.intervals + 2, dim, padding_idx=0)
        self.position = nn.Embedding(max_len, dim)
        self.has_text = text_matrix is not None
        if self.has_text:
            items, texts = (torch.as_tensor(np.asarray(m, dtype=np.float32)) for m in text_matrix)
            # Frozen tables: not in state_dict (so never in a checkpoint); the run store keeps them
            # once (inputs.npz while training, the model record's "frozen" entry once finished).
            self.register_buffer("item_text", items, persistent=False)
            self.register_buffer("event_text", texts, persistent=False)
            self.text_proj = nn.Linear(items.shape[1], dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoded events [B, L, D], mask of real events [B, L])."""
        cats, items = batch["ev_category"], batch["ev_item"]
        length = cats.shape[1]
        pos = torch.arange(length - 1, -1, -1, device=cats.device)
        x = (self.category(cats) + self.item(items) + self.event_type(batch["ev_type"])
             + self.interval(batch["ev_interval"]) + self.position(pos))
        if self.has_text:
            x = x + self.text_proj(self.item_text[items] + self.event_text[batch["ev_text"]])
        return self.dropout(self.norm(x)), batch["ev_type"] != 0


class NextCategoryHead(nn.Module):
    """Next-category logits tied to the category embeddings, plus learned weights on two
    priors the sequence already shows: the decayed event history and the cut-off window."""

    def __init__(self, category_embedding: nn.Embedding, dim: int):
        super().__init__()
        self.embedding = category_embedding
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(category_embedding.num_embeddings))
        self.prior_weight = nn.Parameter(torch.tensor([1.0, 0.5]))

    def forward(self, h: torch.Tensor, history: Optional[torch.Tensor] = None,
                window: Optional[torch.Tensor] = None) -> torch.Tensor:
        # Scaled like attention so untrained logits start small whatever the width.
        logits = self.proj(h) @ self.embedding.weight.T / self.embedding.embedding_dim ** 0.5 + self.bias
        if history is not None:
            logits = logits + self.prior_weight[0] * log_prior(history) + self.prior_weight[1] * log_prior(window)
        return mask_padding(logits)


def next_event_loss(logits: torch.Tensor, categories: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting each event's successor (positions 0..L-2 -> 1..L-1), on real
    pairs only: the auxiliary loss of the sequence models (causal, so no future leaks)."""
    target = categories[:, 1:]
    valid = mask[:, :-1] & (target != 0)
    if not valid.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[:, :-1][valid], target[valid])


def migration_loss(model, batch: dict, out: dict, switch_weight: float, aux_weight: float):
    """Shared loss of the migration models: next category + P(switch) + auxiliary next event."""
    ce = F.cross_entropy(out["logits"], batch["next_category"])
    switch = F.binary_cross_entropy_with_logits(out["switch_logit"], batch["is_switch"].float())
    aux = next_event_loss(out["aux_logits"], batch["ev_category"], out["mask"])
    loss = ce + switch_weight * switch + aux_weight * aux
    return loss, {"loss": loss.detach(), "next_ce": ce.detach(), "switch_bce": switch.detach(), "aux_ce": aux.detach()}


class MigrationModelBase(nn.Module):
    """What every migration model shares: inputs, loss and the evaluation outputs."""

    task = "migration"
    columns = EVENT_COLUMNS + WINDOW_COLUMNS + MIGRATION_LABELS

    def __init__(self, params, vocab):
        super().__init__()
        self.params, self.vocab = params, vocab

    def priors(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(decayed event history, cut-off window distribution), both [B, C+1]."""
        windows = window_distributions(batch, self.vocab.categories, self.vocab.top_k)
        return decayed_history(batch["ev_category"], self.vocab.categories), windows[:, -1]

    def loss(self, batch: dict, out: dict):
        """(scalar loss, dict of detached parts for logging)."""
        return migration_loss(self, batch, out, self.params.switch_weight, self.params.aux_weight)

    @torch.no_grad()
    def predict(self, batch: dict) -> dict:
        """Evaluation / scoring outputs: next-category probabilities [B, C+1] and P(switch) [B]."""
        out = self(batch)
        return {"next_probs": torch.softmax(out["logits"], -1), "p_switch": torch.sigmoid(out["switch_logit"])}
