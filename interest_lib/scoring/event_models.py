"""Event-level models served by ``interest score``: ``score.migration = event:<name>``.

The event-level protocol's models (``interest evaluate --protocol event``) rank the next
category from a user's events themselves, not from weekly windows: on Complete Journey the
learned ranker beats the best baseline (TIFU-KNN) where the window-sequence Transformer loses to
it (docs/event_protocol.md). To serve one, the scoring run fits it on the driver, once, on
silver.events_sessionized's events before ``as_of`` (read from the Delta log without Spark, as
the protocol reads them), exactly as the protocol fits it at its cut:

- the baselines' settings, and for the learned ranker the bar its switch weight is chosen
  against, are chosen on the latest fifth of that history (the protocol's validation period,
  :func:`~interest_lib.evaluate.event_benchmark.choose_baselines`); popularity, decayed
  frequency and Markov have fixed settings and skip it;
- every user's scores at ``as_of`` become next-category probabilities over the scoring
  vocabulary (the ranker's softmax, the baselines' normalised scores); they travel to the
  scoring UDF in the predictors' broadcast (:class:`EventScores`): whole rows up to
  :data:`DENSE_BYTES`, beyond that each user's :data:`KEEP` most probable categories.

A fit (the chosen settings, the ranker's network) is kept in the run store and reused by later
runs within ``score.event_refit_days`` (:mod:`.event_fits`): they only rebuild the state.

Driver memory grows with users x categories (the protocol's model state); the learned ranker
caps its replayed training baskets itself (``RankerParams.max_train_gb``). The stream's scoring
cannot use these models (they are fitted once, on the history before a fixed ``as_of``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from interest_lib.conf.validation import EVENT_MODELS as MODELS, EVENT_PREFIX as PREFIX

if TYPE_CHECKING:
    from interest_lib.scoring.event_fits import FitStore

#: Categories kept per user when the whole rows would not fit :data:`DENSE_BYTES` (the job keeps
#: at least score.top_k and score.recommendations).
KEEP = 64
#: Largest [users, vocabulary] float32 table kept whole: P(switch) and the explore slots then read
#: every category's probability, not only the kept ones'.
DENSE_BYTES = 256 << 20
_USER_BLOCK = 2048  # users scored at once


def event_model_name(source: str) -> str | None:
    """The model a ``score.migration`` value names after ``event:`` (None: not an event model)."""
    return source[len(PREFIX):] if source.startswith(PREFIX) else None


@dataclass
class EventScores:
    """An event-level model's next-category probabilities per user, as the ``baseline`` of a
    scoring :class:`~interest_lib.scoring.predictors.Predictor`: ``forecast`` looks the batch's
    users up (``arrays["user_id"]``) and returns dense rows over the vocabulary."""

    users: dict
    """user_id -> row of ``probs``."""
    ids: np.ndarray | None
    """[users, kept] vocabulary ids, most probable first; None: ``probs`` holds whole rows."""
    probs: np.ndarray
    """[users, kept] the kept ids' probabilities, or [users, width] whole rows (float32)."""
    width: int
    """Vocabulary size (ids 0..width-1; 0 is padding)."""
    fit: str = ""
    """The kept fit (:mod:`.event_fits`) the model was restored from or written to; "" for none."""

    def forecast(self, arrays: dict) -> np.ndarray:
        """[N, width] next-category probabilities of the batch's users (zero outside each
        user's kept categories). Raises ValueError naming users the model was not fitted on."""
        users = arrays["user_id"]
        rows = np.array([self.users.get(u, -1) for u in users], dtype=np.int64)
        if (rows < 0).any():
            missing = [u for u, r in zip(users, rows) if r < 0]
            raise ValueError(f"{len(missing)} scored user(s) had no events before the event model's as_of "
                             f"(first: {missing[0]!r}); rerun `interest score`")
        if self.ids is None:
            return self.probs[rows].copy()
        out = np.zeros((len(rows), self.width), dtype=np.float32)
        np.put_along_axis(out, self.ids[rows], self.probs[rows], axis=1)
        out[:, 0] = 0.0
        return out


def event_settings(log, n: int, log_line: Callable[[str], None] = print,
                   what: str = "event-level models") -> tuple[dict, str]:
    """(chosen setting per baseline, the best baseline's name), chosen on the latest fifth of the
    first ``n`` events of ``log`` as the protocol's validation period chooses them
    (:func:`~interest_lib.evaluate.event_benchmark.choose_baselines`). Raises ValueError naming
    ``what`` when no user has events on both sides of that period's cut."""
    from interest_lib.evaluate.event_benchmark import choose_baselines
    from interest_lib.evaluate.event_protocol import make_targets, time_cut

    targets = make_targets(log, time_cut(log.ts[:n]), end=int(log.ts[n - 1]))
    if len(targets) == 0:
        raise ValueError(f"{what}: no user has events on both sides of the history's 80th percentile "
                         "of event times: too little history to choose its settings")
    log_line(f"{what}: choosing settings on the latest {len(targets):,} events")
    _, chosen, best = choose_baselines(log, targets, log_line=log_line)
    log_line(f"{what}: best baseline {best} = {chosen[best].label()}")
    return chosen, best


def new_event_model(name: str, settings: tuple[dict, str] | None, log_line: Callable[[str], None] = print,
                    ranker=None):
    """An unfitted event model ``name`` (one of :data:`MODELS`): popularity, decayed frequency
    and Markov with their fixed settings, the others with ``settings`` (:func:`event_settings`;
    the learned ranker chooses its switch weight against the best baseline there; ``ranker``: its
    RankerParams, None for the defaults). Raises ValueError for an unknown name."""
    from interest_lib.models.event_baselines import FIXED

    if name not in MODELS:
        raise ValueError(f"unknown event model {name!r}; known: {', '.join(MODELS)}")
    if name in FIXED:
        return FIXED[name].build()
    chosen, best = settings
    if name == "learned_ranker":
        from interest_lib.models.event_ranker import LearnedRanker

        return LearnedRanker(ranker, log_line=log_line, reference=chosen[best].build)
    return chosen[name].build()


def fit_event_model(name: str, events: pd.DataFrame, when: dt.datetime, vocab_keys: np.ndarray,
                    log_line: Callable[[str], None] = print, keep: int = KEEP,
                    fits: "FitStore | None" = None, ranker=None) -> EventScores:
    """Fit event model ``name`` (one of :data:`MODELS`) on ``events`` (``user_id``, ``category``,
    ``ts`` naive UTC) before ``when`` and score every user at ``when``, keeping each user's ``keep``
    most probable categories; ``vocab_keys``: vocabulary id -> category key (``""`` for ids
    without one). With ``fits`` a fit kept there recently enough is reused (its state rebuilt
    from these events) and a new fit is kept (:mod:`.event_fits`); ``ranker``: the learned
    ranker's RankerParams (None: the defaults), a kept fit is reused only with the same ones.
    Raises ValueError for an unknown name, when there are no events before ``when`` or too few to
    choose its settings."""
    from interest_lib.evaluate.event_protocol import encode_events

    if name not in MODELS:
        raise ValueError(f"unknown event model {name!r}; known: {', '.join(MODELS)}")
    before = events[events["ts"] < pd.Timestamp(when)]
    if before.empty:
        raise ValueError(f"no events before {when:%Y-%m-%dT%H:%M:%S} to fit event:{name} on")
    log = encode_events(before)
    now = int(pd.Timestamp(when).value)
    model, fit_id = _fitted(name, log, when, log_line, fits, ranker)
    to_vocab = vocabulary_ids(log.categories, {k: i for i, k in enumerate(vocab_keys) if k})
    known = to_vocab > 0
    width = len(vocab_keys)
    whole = log.num_users * width * 4 <= DENSE_BYTES
    keep = width if whole else min(keep, width)
    ids = None if whole else np.zeros((log.num_users, keep), dtype=np.int32)
    probs = np.zeros((log.num_users, keep), dtype=np.float32)
    for lo in range(0, log.num_users, _USER_BLOCK):
        users = np.arange(lo, min(lo + _USER_BLOCK, log.num_users))
        p = _probabilities(model.scores(users, now), softmax=name == "learned_ranker")
        dense = np.zeros((len(users), width))
        dense[:, to_vocab[known]] = p[:, 1:][:, known]
        if whole:
            probs[users] = dense
        else:
            top = np.argsort(-dense, axis=1, kind="stable")[:, :keep]
            ids[users], probs[users] = top, np.take_along_axis(dense, top, axis=1)
    log_line(f"event:{name}: {log.num_users:,} users scored at {when:%Y-%m-%dT%H:%M:%S} from {len(log):,} events"
             + ("" if whole else f"; each user's {keep} most probable categories kept (P(switch) and the "
                                 "explore slots read only those)"))
    return EventScores(users={u: i for i, u in enumerate(log.users)}, ids=ids, probs=probs, width=width, fit=fit_id)


def _fitted(name: str, log, when: dt.datetime, log_line: Callable[[str], None], fits: "FitStore | None",
            ranker=None):
    """(model ``name`` with its state at the end of ``log``, the id of the kept fit it uses or
    wrote, "" for none): a kept fit of ``fits`` when one is recent enough (for the learned
    ranker: made with the same ``ranker`` parameters), else a new fit (kept in ``fits``)."""
    from interest_lib.models.event_baselines import FIXED
    from interest_lib.scoring.event_fits import restore_model

    if name in FIXED:  # nothing chosen or trained: nothing to keep
        return new_event_model(name, None, log_line).fit(log, len(log)), ""
    if name == "learned_ranker" and ranker is None:
        from interest_lib.models.event_ranker import RankerParams

        ranker = RankerParams()
    params = dataclasses.asdict(ranker) if name == "learned_ranker" else None
    kept = fits.find(name, when, params) if fits is not None else None
    if kept is not None:
        age = (when - kept.fitted_at).total_seconds() / 86400
        log_line(f"event:{name}: reusing the fit made at {kept.fitted_at:%Y-%m-%dT%H:%M:%S} ({age:.1f} days "
                 f"before as_of; score.event_refit_days {fits.max_days:g}), state rebuilt from {len(log):,} events")
        return restore_model(kept, log, len(log), log_line), kept.fit_id
    settings = event_settings(log, len(log), log_line, what=f"event:{name}")
    model = new_event_model(name, settings, log_line, ranker).fit(log, len(log))
    if fits is None:
        return model, ""
    return model, fits.save(name, when, model, settings, log.categories, log_line).fit_id


def vocabulary_ids(categories: np.ndarray, key_ids: dict) -> np.ndarray:
    """Per log category (index c - 1 for category c), its vocabulary id in ``key_ids`` (category
    key -> id; 0: not in the vocabulary)."""
    return np.array([key_ids.get(c, 0) for c in categories], dtype=np.int64)


def _probabilities(scores: np.ndarray, softmax: bool) -> np.ndarray:
    """Rows of scores [n, C+1] (column 0 padding) -> distributions over the categories: the
    ranker's scores are logits; the baselines' are non-negative weights, normalised."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[:, 0] = -np.inf if softmax else 0.0
    if softmax:
        z = np.exp(scores - scores.max(axis=1, keepdims=True))
    else:
        z = np.maximum(scores, 0.0)
    return z / np.maximum(z.sum(axis=1, keepdims=True), 1e-300)
