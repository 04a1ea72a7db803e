"""A learned ranker for the event-level protocol: repeat, replenishment and collaborative signals
blended per (user, category) by a small network trained on the protocol's own replay.

Every feature is computed from an incremental state that the protocol streams one timestamp at a
time (:func:`interest_lib.evaluate.event_protocol.score_targets`), so training and scoring see
exactly the same, order-free view of the history (events sharing a timestamp never see each
other). ``fit(log, n)``:

1. places an internal cut at the ``train_quantile`` of the first ``n`` events' times;
2. builds the states from the events up to it and replays the rest of the history (up to event
   ``n``) through the protocol's own streaming, recording the features of every basket of a user
   with history and the categories it held: the training examples;
3. trains the network listwise (softmax over all categories, each target event one label), the
   last ``holdout`` share of the replayed baskets by time kept apart to pick the epoch;
4. unless ``switch_weight`` is set, chooses how much a switch target weighs in the loss on that
   holdout, against the ``reference`` baseline it is given (the protocol's best): weights from
   :data:`SWITCH_WEIGHTS` are trained in turn while the worse of the two target fractions,
   min(overall gain / 5%, switch gain / 15%), rises, and the best is kept. A data set
   whose switches are mostly never-bought, popular categories (Ta-Feng: 1.2-1.3) gets a higher
   weight than one where the next basket mostly repeats (Complete Journey: 1-1.1). The same
   search runs with and without the per-category embedding and bias (``choose_identity``): they
   carry Ta-Feng's overall gain and cost Complete Journey's, whose 2,469 households are too few
   to estimate them (docs/event_protocol.md, "What in the ranker is hungry for households").
   Then the blend of the two identities' best networks (``blend_identities``: their
   log-probabilities averaged) is judged by the same rule, and kept where it is best;
5. with ``refit`` (on), trains the chosen network(s) once more on every replayed basket, the
   holdout (the latest, closest to the cut) included, each for the epochs that were its best.

After ``fit`` the states stand at event ``n``, where the protocol starts scoring. The network is
not retrained afterwards; its inputs keep growing with the observed history.

Features per (user, category): decayed counts (per basket 0.7 / 0.9 / 0.98, per day 0.995),
decayed shares, TIFU-KNN neighbours' shares, Markov transitions from the last basket, basket
co-occurrence with the user's profile, total and basket counts, days since the category's last
purchase, its typical inter-purchase interval and their ratio (replenishment), presence in the
last baskets, global and recent popularity; per user: baskets, gap since the last basket, basket
size, distinct categories; the hour and weekday of the prediction; and (``hour_habit``) the
user's own share of the category in their baskets at the same part of the day. A learned
category embedding lets the network treat categories differently (a top-up trip buys other things
than a weekly shop).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from interest_lib.errors import InputError
from interest_lib.event_stream import make_targets, score_targets, time_cut
from interest_lib.metrics import all_ranks, per_target_metrics
from interest_lib.models.event_baselines import (
    DAY_NS, BucketedDayCounts, DecayedState, EventBaseline, Markov, TifuKnn, _l1,
)

FEATURES = (
    "log_b70", "log_b90", "log_b98", "log_d995", "share_b90", "share_d995", "tifu_neighbours", "markov",
    "cooccurrence", "log_count", "log_baskets_with", "ever", "log_days_since", "log_interval",
    "has_interval", "replenish_ratio", "in_last_basket", "in_last3", "log_popularity", "log_recent_popularity",
    "user_log_baskets", "user_log_gap_days", "user_log_basket_size", "user_log_distinct",
    "hour_sin", "hour_cos", "dow_sin", "dow_cos",
)
RECENT_HALF_LIFE_DAYS = 7.0
#: with ``RankerParams.hour_habit``: the household's share of the category in its baskets of the
#: same part of the day (before 11, 11-15, 15-19, later), day-decayed 0.995, appended last
HOUR_HABIT = "hour_habit_share"
HOUR_EDGES = (11, 15, 19)
EVER = FEATURES.index("ever")
#: (basket, category) cells the network scores at once when it picks the epoch
PREDICT_CELLS = 1 << 20

#: ``[users, categories+1]`` float64 arrays the feature state holds (measured: 16.2 on Ta-Feng's
#: 32,266 users x 2,013 categories with ``hour_habit``, whose parts of the day are 4 of them).
STATE_ARRAYS = 13
#: Beyond the state and the replayed features, measured peaks held up to 50% more (the features
#: of all users sharing one timestamp, the scores of every target basket, training's batches).
PEAK_FACTOR = 1.5
#: ``[users, categories+1]`` float64 arrays of the reference baseline while ``fit`` streams it over
#: the replay to choose the switch weight (TIFU-KNN's decayed counts, shares and neighbours' mean)
REFERENCE_ARRAYS = 4

#: The exported network's arrays with one row per category (index 0: padding); the others are
#: shared by all categories.
CATEGORY_ROWS = ("cat1", "b3")

#: Switch weights ``fit`` tries in turn, when ``RankerParams.switch_weight`` is 0 and it has a
#: reference baseline, until one judges no better on the holdout than the one before.
SWITCH_WEIGHTS = (1.0, 1.1, 1.2, 1.3, 1.5, 2.0)
#: Issue 13's targets (gain over the best baseline, per slice): a switch weight is judged by the
#: worse of its two fractions of them (the rule of docs/event_protocol.md's second round).
TARGET_GAINS = (("all", 0.05), ("switch", 0.15))


def feature_bytes_per_basket(categories: int, n_features: int) -> int:
    """Bytes of one replayed basket's float32 features ``[C+1, F]``."""
    return (categories + 1) * n_features * 4


def memory_parts_gib(users: int, categories: int, n_features: int, replay_baskets: int,
                     hour_habit: bool, reference: bool = False) -> tuple[float, float]:
    """(state, replayed features) of a fit's estimated peak memory, GiB, each times
    :data:`PEAK_FACTOR`: the per (user, category) float64 state and the replayed baskets'
    features; with ``reference`` (the switch weight chosen against a baseline) also that
    baseline's state and its float64 scores of every replayed basket."""
    arrays = STATE_ARRAYS + (len(HOUR_EDGES) + 1 if hour_habit else 0) + (REFERENCE_ARRAYS if reference else 0)
    state = users * (categories + 1) * 8 * arrays
    replay = replay_baskets * (feature_bytes_per_basket(categories, n_features) + (categories + 1) * 8 * reference)
    return PEAK_FACTOR * state / 2**30, PEAK_FACTOR * replay / 2**30


def memory_need_gib(users: int, categories: int, n_features: int, replay_baskets: int,
                    hour_habit: bool, reference: bool = False) -> float:
    """Estimated peak memory of a fit (GiB): :func:`memory_parts_gib` summed. Measured peak /
    estimate: Ta-Feng's 32,266 users x 2,012 subclasses 17.8 / 18.1 GiB, Complete Journey's 3,403
    product types 8.1 / 7.6, a synthetic 1,000 users x 2,000 categories 5.7 / 5.5."""
    return sum(memory_parts_gib(users, categories, n_features, replay_baskets, hour_habit, reference))


def available_memory_gib() -> float | None:
    """MemAvailable of /proc/meminfo (GiB), or None where there is none (not Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class RankerParams:
    """Hyper-parameters of :class:`LearnedRanker`. The defaults were chosen on Complete Journey's
    validation period only (docs/event_protocol.md): the second half of the history replayed for
    training (train_quantile 0.5) gained more on the switch slice than the last fifth (+8.1% vs
    +3.7%), with a wider network (96) and 5 epochs. A second round there (collaborative and
    department features, the repeat/explore mixture, switch weights, more replayed baskets) left
    them as they are: switch_weight trades the overall slice for the switch slice, the mixture
    lost on switch, the rest gained nothing beyond seed noise. A third round added ``hour_habit``
    (+0.9% / +0.3% NDCG@10 overall and +1.6% / +3.7% on switch over the ranker without it, seeds 0
    and 1, both CIs above zero). A fifth made ``fit`` choose the category identity and judge the
    blend of both identities' best networks (Complete Journey's validation period: +2.9% / +12.1%
    with the blend chosen, against +2.6% / +9.6%). A tenth raised the epochs from 5 to 12 (the
    holdout still rose at epoch 5; validation +3.4% / +11.9% with the blend chosen; a cosine
    learning-rate decay over the 12 epochs gave +3.1% / +12.0%, and over 5 less than none). An
    eleventh turned ``refit`` on (the chosen networks trained again with the holdout's baskets:
    +3.7% / +11.2%, the rule 0.74 against 0.68). A twelfth raised the epochs from 12 to 20 (both
    chosen networks were best at epoch 12; at 20: +3.9% / +13.7%, the rule 0.78, and Ta-Feng's
    check rose on both slices)."""

    hidden: int = 96  # width of the two hidden layers
    embedding: int = 8  # size of the learned category embedding fed to the network
    epochs: int = 20  # most passes over the replayed baskets; the best on the holdout is kept
    batch: int = 256  # baskets per step
    lr: float = 3e-3
    weight_decay: float = 1e-5
    train_quantile: float = 0.5  # internal cut: baskets after it (and before the fit point) train
    holdout: float = 0.15  # the latest share of those baskets picks the epoch
    seed: int = 0
    tifu_k: int = 300
    threads: int = 0  # torch threads while training (0 = torch's default; 1 is fastest for tiny data)
    switch_weight: float = 0.0  # loss weight of switch targets (1 = every target alike); 0: chosen on the holdout (SWITCH_WEIGHTS)
    repeat_gate: bool = False  # repeat/explore mixture: a gate P(repeat) and one head each (see _mixture)
    hour_habit: bool = True  # one more feature: the household's share of the category at this part of the day
    category_identity: bool = True  # a learned embedding and bias per category (False: categories differ only by their features)
    choose_identity: bool = True  # while choosing the switch weight: also train with the other category_identity, keep the better
    blend_identities: bool = True  # with choose_identity: also judge the blend of the best network with and without identity (their log-probabilities averaged)
    max_train_gb: float = 4.0  # most memory (GiB) the replayed baskets' features may take; beyond it the latest that fit train (0: no cap)
    refit: bool = True  # after the choices: train the chosen network(s) again on every replayed basket, holdout included, for their best epoch count


class FeatureState(EventBaseline):
    """The incremental state behind :data:`FEATURES`: composed of the protocol's baselines (their
    states are reused as they are) plus per (user, category) counts and times and a global
    basket co-occurrence matrix. ``features(users, now)`` is ``[len(users), C+1, F]``, its columns
    named by ``names``: :data:`FEATURES`, and with ``hour_habit`` :data:`HOUR_HABIT` last."""

    name = "ranker_features"

    def __init__(self, tifu_k: int = 300, hour_habit: bool = False):
        self.hour_habit = BucketedDayCounts(0.995, len(HOUR_EDGES) + 1) if hour_habit else None
        self.names = FEATURES + ((HOUR_HABIT,) if hour_habit else ())
        self.decayed = {"b70": DecayedState(0.7, "basket", False), "b90": DecayedState(0.9, "basket", False),
                        "b98": DecayedState(0.98, "basket", False)}
        # TIFU-KNN's own state is the per-day decayed counts (d995)
        self.tifu = TifuKnn(decay=0.995, unit="day", binary=False, k=tifu_k, alpha=0.0, prior=0.0)
        self.markov = Markov(prior=0.0)

    def _fit(self, user, category, ts):
        U, W = self.num_users, self.width
        for state in self.decayed.values():
            state.fit(user, category, ts, U, W)
        log_view = _LogView(user, category, ts, U, W - 1)
        self.tifu.fit(log_view, len(ts))
        self.markov.fit(log_view, len(ts))
        self.count = np.zeros((U, W))
        np.add.at(self.count, (user, category), 1.0)
        # one row per (user, timestamp, category): baskets holding each category
        key = np.unique(np.stack([user, ts, category]), axis=1)
        bu, bt, bc = key
        self.baskets_with = np.zeros((U, W))
        np.add.at(self.baskets_with, (bu, bc), 1.0)
        self.first = np.full((U, W), np.nan)
        self.last = np.full((U, W), np.nan)
        np.fmin.at(self.first, (bu, bc), bt.astype(np.float64))
        np.fmax.at(self.last, (bu, bc), bt.astype(np.float64))
        ub = np.unique(np.stack([user, ts]), axis=1)
        self.n_baskets = np.bincount(ub[0], minlength=U).astype(np.float64)
        self.n_events = np.bincount(user, minlength=U).astype(np.float64)
        self.last_ts = np.full(U, np.nan)
        np.fmax.at(self.last_ts, ub[0], ub[1].astype(np.float64))
        self.last_basket = np.zeros((U, W))
        self.last3 = np.zeros((U, W))
        last_mask = bt == self.last_ts[bu]
        self.last_basket[bu[last_mask], bc[last_mask]] = 1.0
        # last3: presence decayed 2/3 per basket over the user's baskets, oldest first
        order = np.lexsort((bt, bu))
        rank_from_end = self._basket_rank_from_end(bu[order], bt[order])
        np.add.at(self.last3, (bu[order], bc[order]), (2.0 / 3.0) ** rank_from_end / 3.0)
        self.cooc = self._cooccurrence(bu, bt, bc, W)
        self.co = self._row_normalised(self.cooc)
        self.recent = np.bincount(category, weights=0.5 ** ((ts.max() - ts) / DAY_NS / RECENT_HALF_LIFE_DAYS),
                                  minlength=W) if len(ts) else np.zeros(W)
        self.recent_ref = int(ts.max()) if len(ts) else 0
        if self.hour_habit:
            self.hour_habit.fit(user, category, ts, part_of_day(ts), U, W)

    @staticmethod
    def _basket_rank_from_end(bu, bt):
        """Per (user, timestamp, category) row sorted by user then time: how many of the user's
        baskets come after this row's basket."""
        new_basket = np.r_[True, (bu[1:] != bu[:-1]) | (bt[1:] != bt[:-1])]
        ordinal = np.cumsum(new_basket)
        last = np.zeros(int(bu.max()) + 1 if len(bu) else 0, dtype=np.int64)
        np.maximum.at(last, bu, ordinal)
        return (last[bu] - ordinal).astype(np.float64)

    @staticmethod
    def _cooccurrence(bu, bt, bc, W, chunk=20000):
        """``[W, W]`` counts of baskets holding both categories (diagonal zero)."""
        key = bu.astype(np.int64) * (1 << 40) + bt.astype(np.int64) // 10**9  # seconds fit in 40 bits
        _, basket = np.unique(key, return_inverse=True)
        cooc = np.zeros((W, W), dtype=np.float64)
        n = int(basket.max()) + 1 if len(basket) else 0
        for lo in range(0, n, chunk):
            sel = (basket >= lo) & (basket < lo + chunk)
            m = np.zeros((min(chunk, n - lo), W), dtype=np.float32)
            m[basket[sel] - lo, bc[sel]] = 1.0
            cooc += (m.T @ m).astype(np.float64)
        np.fill_diagonal(cooc, 0.0)
        return cooc

    @staticmethod
    def _row_normalised(cooc: np.ndarray) -> np.ndarray:
        """Each row of ``cooc`` over its sum (rows without co-occurrence stay zero)."""
        return cooc / np.maximum(cooc.sum(axis=1, keepdims=True), 1.0)

    def _observe(self, users, categories, now):
        for state in self.decayed.values():
            state.observe(users, categories, now)
        self.tifu.observe(users, categories, now)
        self.markov.observe(users, categories, now)
        self.recent *= 0.5 ** ((now - self.recent_ref) / DAY_NS / RECENT_HALF_LIFE_DAYS)
        self.recent_ref = now
        np.add.at(self.recent, categories, 1.0)
        bucket = int(part_of_day(np.int64(now))) if self.hour_habit else None
        for u in np.unique(users):
            cats = categories[users == u]
            if self.hour_habit:
                self.hour_habit.observe(u, cats, now, bucket)
            present = np.unique(cats)
            np.add.at(self.count[u], cats, 1.0)
            self.baskets_with[u, present] += 1.0
            first = self.first[u, present]
            self.first[u, present] = np.where(np.isnan(first), now, first)
            self.last[u, present] = now
            self.n_baskets[u] += 1
            self.n_events[u] += len(cats)
            self.last_ts[u] = now
            self.last_basket[u] = 0.0
            self.last_basket[u, present] = 1.0
            self.last3[u] *= 2.0 / 3.0
            self.last3[u, present] += 1.0 / 3.0
            self.cooc[np.ix_(present, present)] += 1.0
            self.cooc[present, present] -= 1.0
        # only the baskets' rows changed: renormalise those (a [C+1, C+1] pass per timestamp took
        # most of the scoring time on a catalogue of thousands of categories)
        touched = np.unique(categories)
        self.co[touched] = self._row_normalised(self.cooc[touched])

    def features(self, users: np.ndarray, now: int) -> np.ndarray:
        """``[len(users), C+1, F]`` float32 features named by ``names`` as of ``now``."""
        users = np.asarray(users)
        n, W = len(users), self.width
        out = np.zeros((n, W, len(self.names)), dtype=np.float32)
        col = {name: i for i, name in enumerate(self.names)}
        vec = {k: s.vectors(users, now) for k, s in self.decayed.items()}
        vec["d995"] = self.tifu.state.vectors(users, now)
        for k in ("b70", "b90", "b98", "d995"):
            out[:, :, col[f"log_{k}"]] = np.log1p(vec[k])
        share90, share995 = _l1(vec["b90"]), _l1(vec["d995"])
        out[:, :, col["share_b90"]] = np.log1p(100 * share90)
        out[:, :, col["share_d995"]] = np.log1p(100 * share995)
        out[:, :, col["tifu_neighbours"]] = np.log1p(100 * self.tifu.neighbours[users])
        out[:, :, col["markov"]] = np.log1p(100 * self.markov.scores(users, now))
        out[:, :, col["cooccurrence"]] = np.log1p(100 * (share90 @ self.co))
        out[:, :, col["log_count"]] = np.log1p(self.count[users])
        nbc = self.baskets_with[users]
        out[:, :, col["log_baskets_with"]] = np.log1p(nbc)
        last = self.last[users]
        ever = ~np.isnan(last)
        out[:, :, col["ever"]] = ever
        days_since = np.where(ever, (now - np.nan_to_num(last)) / DAY_NS, 0.0)
        out[:, :, col["log_days_since"]] = np.log1p(np.maximum(days_since, 0.0))
        has_interval = nbc > 1
        interval = np.where(has_interval, (np.nan_to_num(last) - np.nan_to_num(self.first[users]))
                            / DAY_NS / np.maximum(nbc - 1, 1), 0.0)
        out[:, :, col["log_interval"]] = np.log1p(interval)
        out[:, :, col["has_interval"]] = has_interval
        out[:, :, col["replenish_ratio"]] = np.where(has_interval, np.log1p(days_since) - np.log1p(interval), 0.0)
        out[:, :, col["in_last_basket"]] = self.last_basket[users]
        out[:, :, col["in_last3"]] = self.last3[users]
        out[:, :, col["log_popularity"]] = np.log(self.share() + 1e-7)
        recent = self.recent * 0.5 ** ((now - self.recent_ref) / DAY_NS / RECENT_HALF_LIFE_DAYS)
        out[:, :, col["log_recent_popularity"]] = np.log(recent / max(recent[1:].sum(), 1e-12) + 1e-7)
        nb = self.n_baskets[users]
        gap = np.where(np.isnan(self.last_ts[users]), 0.0, (now - np.nan_to_num(self.last_ts[users])) / DAY_NS)
        per_user = {
            "user_log_baskets": np.log1p(nb),
            "user_log_gap_days": np.log1p(np.maximum(gap, 0.0)),
            "user_log_basket_size": np.log1p(self.n_events[users] / np.maximum(nb, 1.0)),
            "user_log_distinct": np.log1p((nbc[:, 1:] > 0).sum(axis=1)),
        }
        for name, value in per_user.items():
            out[:, :, col[name]] = value[:, None]
        if self.hour_habit:
            shares = self.hour_habit.shares(users, int(part_of_day(np.int64(now))))
            out[:, :, col[HOUR_HABIT]] = np.log1p(100 * shares)
        seconds = now // 10**9
        hour = (seconds % 86400) / 3600.0
        dow = ((seconds // 86400) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
        out[:, :, col["hour_sin"]], out[:, :, col["hour_cos"]] = np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)
        out[:, :, col["dow_sin"]], out[:, :, col["dow_cos"]] = np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7)
        return out


def column_mean_std(flat: np.ndarray, block: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """``flat.mean(axis=0), flat.std(axis=0)`` of a 2-D float32 array, the same numbers to the
    bit (numpy sums the rows in order, into a float32 row), computed ``block`` rows at a time:
    ``std`` alone would allocate a temporary as large as the replayed baskets' features."""
    n, acc = len(flat), np.zeros((1, flat.shape[1]), dtype=flat.dtype)
    for lo in range(0, n, block):
        acc = np.add.reduce(np.concatenate([acc, flat[lo:lo + block]]), axis=0, keepdims=True)
    mean, acc = acc / flat.dtype.type(n), np.zeros_like(acc)
    for lo in range(0, n, block):
        x = flat[lo:lo + block] - mean
        x *= x
        acc = np.add.reduce(np.concatenate([acc, x]), axis=0, keepdims=True)
    return mean[0], np.sqrt(acc[0] / flat.dtype.type(n))


def part_of_day(ts):
    """Part of the day of nanosecond timestamps: 0 before 11:00, 1 to 15:00, 2 to 19:00, 3 later."""
    return np.searchsorted(np.array(HOUR_EDGES), (np.asarray(ts) // 10**9 % 86400) // 3600, side="right")


@dataclass
class _LogView:
    """The first events of a log, shaped as the baselines' ``fit(log, n)`` expects."""

    user: np.ndarray
    category: np.ndarray
    ts: np.ndarray
    num_users: int
    num_categories: int


class _Recorder:
    """Streams a period through a :class:`FeatureState`, writing the features of every scored
    basket, in the protocol's order, into one preallocated ``[baskets, C+1, F]`` array (the
    protocol calls ``fit``, then ``scores`` / ``observe`` per timestamp)."""

    def __init__(self, state: FeatureState, baskets: int, width: int):
        self.state, self.filled = state, 0
        self.features = np.empty((baskets, width, len(state.names)), dtype=np.float32)

    def fit(self, log, n):
        self.state.fit(log, n)
        return self

    def scores(self, users, now):
        self.features[self.filled:self.filled + len(users)] = self.state.features(users, now)
        self.filled += len(users)
        return np.zeros((len(users), self.features.shape[1]))

    def observe(self, users, categories, now):
        self.state.observe(users, categories, now)


class LearnedRanker(EventBaseline):
    """The protocol's migration model: :class:`FeatureState` features scored by a two-layer
    network with a category embedding and bias, trained listwise on the replayed history before
    the fit point (see the module docstring)."""

    name = "learned_ranker"

    def __init__(self, params: RankerParams | None = None, log_line=print, reference=None):
        """``reference``: a factory of a fresh baseline, the bar the switch weight is chosen
        against (the protocol passes its best); without one, and with ``params.switch_weight``
        set, there is no choice (0 then means 1)."""
        self.params = params or RankerParams()
        self.log_line = log_line
        self.reference = reference
        self.state = FeatureState(tifu_k=self.params.tifu_k, hour_habit=self.params.hour_habit)
        self.history: list[dict] = []
        #: per switch weight tried: its holdout gains over the reference and its rule value
        self.switch_trials: list[dict] = []
        #: the blend's holdout gains and rule value, when it was judged
        self.blend_trial: dict | None = None
        #: the networks that score: one, or two blended; each with its identity and switch weight
        self.members = [{"category_identity": self.params.category_identity,
                         "switch_weight": self.params.switch_weight or 1.0}]
        self._nets: list[dict[str, np.ndarray]] = []
        #: per member: the epochs its network trained to its best holdout NDCG (what ``refit`` trains)
        self._member_epochs: list[int] = []

    @property
    def switch_weight(self) -> float | None:
        """The scoring network's switch weight (None for a blend)."""
        return self.members[0]["switch_weight"] if len(self.members) == 1 else None

    @property
    def category_identity(self) -> bool | None:
        """Whether the scoring network has the category identity (None for a blend)."""
        return self.members[0]["category_identity"] if len(self.members) == 1 else None

    def fit(self, log, n: int) -> "LearnedRanker":
        """Replay the history up to event ``n``, train on it, and leave the state at event ``n``."""
        import torch

        p = self.params
        self.num_users, self.num_categories, self.width = log.num_users, log.num_categories, log.num_categories + 1
        start = time.perf_counter()
        cut = int(log.ts[n - 1])
        train = self._training_targets(log, time_cut(log.ts[:n], p.train_quantile), cut)
        if len(train.basket_ts) < 10:
            raise ValueError(f"learned_ranker: only {len(train.basket_ts)} baskets to learn from before the cut")
        self._check_memory(log, len(train.basket_ts))
        recorder = _Recorder(self.state, len(train.basket_ts), self.width)
        score_targets(recorder, log, train)
        if recorder.filled != len(train.basket_ts):  # np.empty: an unfilled row would be garbage
            raise RuntimeError(f"learned_ranker: {recorder.filled} of {len(train.basket_ts)} baskets replayed")
        X = recorder.features
        self.log_line(f"learned_ranker: {len(X):,} baskets replayed for training "
                      f"({time.perf_counter() - start:.0f}s)")
        threads = torch.get_num_threads()
        if p.threads:  # torch's thread count is process-wide: restored after training
            torch.set_num_threads(p.threads)
        try:
            if self._chooses_switch_weight():
                self._choose_switch_weight(log, train, X, torch)
            else:
                _, epochs = self._train(X, self._target_weights(train, self.switch_weight), torch,
                                        self.category_identity)
                self._member_epochs = [epochs]
            if p.refit:
                self._refit(X, train, torch)
        finally:
            torch.set_num_threads(threads)
        return self

    def _target_weights(self, train, switch_weight: float) -> np.ndarray:
        """``[baskets, C+1]`` target weights: switch targets count ``switch_weight`` times, in the
        loss and in the holdout NDCG that picks the epoch (one objective)."""
        Y = np.zeros((len(train.basket_ts), self.width), dtype=np.float32)
        np.add.at(Y, (train.basket, train.category), np.where(train.is_switch, switch_weight, 1.0).astype(np.float32))
        return Y

    def _chooses_switch_weight(self) -> bool:
        return not self.params.switch_weight and self.reference is not None

    def _holdout_size(self, n: int) -> int:
        return max(int(n * self.params.holdout), 1)

    def _choose_switch_weight(self, log, train, X, torch) -> None:
        """Train with each of :data:`SWITCH_WEIGHTS` in turn and keep the one whose holdout NDCG@10
        gains over the reference baseline reach the larger worse fraction of the targets
        (:data:`TARGET_GAINS`); stop at the first weight that judges no better than the one before.
        With ``choose_identity`` the same search runs with and without the category identity, and
        the best of both is kept (the identity's per-category parameters pay where a data set has
        users enough to estimate them, and cost where it has not). With ``blend_identities`` the
        blend of each identity's best network (log-probabilities averaged) is judged too, and kept
        where it judges best: two networks that err differently (on Complete Journey's validation
        period the blend gained 0.3 points overall over the better one; two seeds of one network
        gained nothing)."""
        first = len(X) - self._holdout_size(len(X))
        hold = train.basket >= first
        rows, cols = train.basket[hold] - first, train.category[hold] - 1
        start = time.perf_counter()
        reference = self.reference()

        def holdout_ndcg(scores):  # per-target NDCG@10 of the holdout's targets
            return per_target_metrics(all_ranks(scores)[rows, cols], (10,))["ndcg@10"]

        ref_scores = score_targets(reference, log, train)[first:]
        ref_ndcg = holdout_ndcg(ref_scores)
        ref_name = getattr(reference, "name", "the reference")
        del ref_scores, reference  # its state is as large as a few of the ranker's arrays
        slices = {"all": np.ones(len(rows), dtype=bool), "switch": train.is_switch[hold]}
        self.log_line(f"learned_ranker: choosing the switch weight on {len(X) - first:,} holdout baskets "
                      f"against {ref_name} ({time.perf_counter() - start:.0f}s)")

        def judged(scores, what):  # (holdout gains per slice, the rule's worse target fraction), logged
            ndcg = holdout_ndcg(scores)
            gains = {name: float(ndcg[m].mean() / ref_ndcg[m].mean() - 1.0)
                     for name, m in slices.items() if m.any() and ref_ndcg[m].mean() > 0}
            rule = min((gains[name] / target for name, target in TARGET_GAINS if name in gains), default=0.0)
            self.log_line(f"learned_ranker: {what}: holdout NDCG@10 "
                          + ", ".join(f"{100 * v:+.1f}% {k}" for k, v in gains.items())
                          + f" vs {ref_name}, worse target fraction {rule:.2f}")
            return gains, rule

        identities = (self.params.category_identity,) + ((not self.params.category_identity,)
                                                         if self.params.choose_identity else ())
        best = {}  # identity -> (rule, weight, exported network, holdout scores) of its best weight
        for identity in identities:
            previous = None
            for weight in SWITCH_WEIGHTS:
                with self._tagging_history(switch_weight=weight, category_identity=identity):
                    scores, epochs = self._train(X, self._target_weights(train, weight), torch, identity)
                gains, rule = judged(scores, f"switch weight {weight:g} {_identity_words(identity)}")
                self.switch_trials.append({"switch_weight": weight, "category_identity": identity,
                                           **{f"gain_{k}": v for k, v in gains.items()}, "rule": rule})
                if identity not in best or rule > best[identity][0]:
                    best[identity] = (rule, weight, self._nets[0], scores, epochs)
                if previous is not None and rule <= previous:
                    break
                previous = rule
        chosen = max(best, key=lambda identity: best[identity][0])
        rule, weight, net, _, epochs = best[chosen]
        self.members, self._nets = [{"category_identity": chosen, "switch_weight": weight}], [net]
        self._member_epochs = [epochs]
        if self.params.blend_identities and len(best) == 2:
            parts = [best[identity] for identity in identities]
            gains, blend_rule = judged(_blend([part[3] for part in parts]), "the blend of both identities' best")
            self.blend_trial = {"switch_weights": [part[1] for part in parts], "category_identities": list(identities),
                                **{f"gain_{k}": v for k, v in gains.items()}, "rule": blend_rule}
            if blend_rule > rule:
                self.members = [{"category_identity": identity, "switch_weight": part[1]}
                                for identity, part in zip(identities, parts)]
                self._nets = [part[2] for part in parts]
                self._member_epochs = [part[4] for part in parts]
        self.log_line("learned_ranker: " + " and ".join(
            f"switch weight {m['switch_weight']:g} {_identity_words(m['category_identity'])}" for m in self.members)
            + (" blended" if len(self.members) > 1 else "") + " chosen")

    def _check_memory(self, log, replay_baskets: int) -> None:
        """Say how much memory the fit will take; stop with an :class:`InputError` saying why and
        what helps when that is more than the machine has free, instead of being killed midway."""
        state, replay = memory_parts_gib(log.num_users, log.num_categories, len(self.state.names), replay_baskets,
                                         self.params.hour_habit, self._chooses_switch_weight())
        need, free = state + replay, available_memory_gib()
        self.log_line(f"learned_ranker: about {need:.1f} GiB for {log.num_users:,} users x {log.num_categories:,} "
                      f"categories and {replay_baskets:,} replayed baskets"
                      + ("" if free is None else f" ({free:.1f} GiB available)"))
        if free is not None and need > free:
            raise InputError(
                f"learned_ranker needs about {need:.1f} GiB for {log.num_users:,} users x {log.num_categories:,} "
                f"categories, {free:.1f} GiB are available: its state alone is about {state:.1f} GiB (users x "
                f"categories), the replayed features the rest (max_train_gb {self.params.max_train_gb:g}). "
                "Use a coarser category level, fewer users, or a lower max_train_gb")

    def _training_targets(self, log, t1: int, cut: int):
        """The replayed baskets ``(t1, cut]``; where their features would take more than
        ``max_train_gb`` (many categories or a long history), the internal cut moves later until
        the latest baskets fit, and a line says so: memory stays bounded whatever the data set."""
        per_basket = feature_bytes_per_basket(log.num_categories, len(self.state.names))
        budget = self.params.max_train_gb
        train = make_targets(log, t1, end=cut)
        if not 0 < budget < float("inf"):  # 0: no cap
            return train
        fits = max(int(budget * 2**30 // per_basket), 10)
        wanted = len(train.basket_ts)
        while len(train.basket_ts) > fits:  # a later cut gives users more history: check again
            t1 = int(train.basket_ts[-fits - 1])
            train = make_targets(log, t1, end=cut)
        if len(train.basket_ts) < wanted:
            self.log_line(f"learned_ranker: the {wanted:,} baskets after the internal cut need "
                          f"{wanted * per_basket / 2**30:.1f} GiB of features (max_train_gb "
                          f"{self.params.max_train_gb:g}): training on the latest {len(train.basket_ts):,}")
        return train

    def _refit(self, X, train, torch) -> None:
        """``refit``: train each chosen member again, with its identity and switch weight, on every
        replayed basket (the holdout, the latest, included) for the epochs that were its best, and
        score with those networks instead."""
        nets = []
        for member, epochs in zip(self.members, self._member_epochs):
            self.log_line(f"learned_ranker: refit on all {len(X):,} replayed baskets, {epochs} epochs, switch weight "
                          f"{member['switch_weight']:g} {_identity_words(member['category_identity'])}")
            with self._tagging_history(**member):
                self._train_fixed(X, self._target_weights(train, member["switch_weight"]), torch,
                                  member["category_identity"], epochs)
            nets.append(self._nets[0])
        self._nets = nets

    @contextmanager
    def _tagging_history(self, **fields):
        """Add ``fields`` (the switch weight and identity being trained) to every :attr:`history`
        entry written inside the ``with`` block."""
        start = len(self.history)
        try:
            yield
        finally:
            for entry in self.history[start:]:
                entry.update(fields)

    def _train(self, X, Y, torch, identity: bool) -> tuple[np.ndarray, int]:
        """Train on features ``X`` ``[n, C+1, F]`` and target weights ``Y`` ``[n, C+1]`` (counts,
        switch targets weighted), with or without the category ``identity``, keeping the epoch with
        the best (weighted) holdout NDCG@10 as the one scoring network; returns that epoch's
        ``[holdout baskets, C+1]`` scores of the holdout (the last ``holdout`` share of ``X``) and
        the number of epochs it took. ``self.net`` (with ``mean`` and ``std``) is the torch network
        of the latest training, read by :meth:`_predict` only; scoring reads the exported
        :attr:`_nets`, which after a choice hold the chosen network(s), not necessarily the latest
        trained."""
        n_train = len(X) - self._holdout_size(len(X))
        Xho, Yho = X[n_train:], Y[n_train:]
        step = self._trainer(X[:n_train], Y[:n_train], torch, identity)
        best, best_state, best_scores, best_epochs = -1.0, None, None, 0
        for epoch in range(self.params.epochs):
            start = time.perf_counter()
            loss = step()
            holdout_scores = self._predict(Xho)
            ndcg = _ndcg_at_10(holdout_scores, Yho)
            self.history.append({"epoch": epoch, "loss": loss, "holdout_ndcg@10": ndcg,
                                 "seconds": time.perf_counter() - start})
            self.log_line(f"learned_ranker: epoch {epoch} loss {loss:.4f} "
                          f"holdout ndcg@10 {ndcg:.4f} ({time.perf_counter() - start:.0f}s)")
            if ndcg > best:
                best, best_state = ndcg, {k: v.clone() for k, v in self.net.state_dict().items()}
                best_scores, best_epochs = holdout_scores, epoch + 1
        self.net.load_state_dict(best_state)
        self.net.eval()
        self._nets = [self._export()]
        return best_scores, best_epochs

    def _train_fixed(self, X, Y, torch, identity: bool, epochs: int) -> None:
        """Train as :meth:`_train` does, but on all of ``X`` for exactly ``epochs`` epochs: no
        holdout to judge by (``refit``); the network after the last epoch scores."""
        step = self._trainer(X, Y, torch, identity)
        for epoch in range(epochs):
            start = time.perf_counter()
            loss = step()
            self.history.append({"epoch": epoch, "loss": loss, "refit": True, "seconds": time.perf_counter() - start})
            self.log_line(f"learned_ranker: refit epoch {epoch} loss {loss:.4f} ({time.perf_counter() - start:.0f}s)")
        self.net.eval()
        self._nets = [self._export()]

    def _trainer(self, X, Y, torch, identity: bool):
        """A fresh seeded network (``self.net``, standardised by ``X``'s column means and stds)
        and its optimiser; returns ``step()``, one shuffled pass over ``(X, Y)`` giving the mean
        listwise loss."""
        p = self.params
        torch.manual_seed(p.seed)
        mean, std = column_mean_std(X.reshape(-1, X.shape[-1]))
        self.mean, self.std = torch.tensor(mean), torch.tensor(std + 1e-6)
        self.net = _Net(X.shape[-1], self.width, p.hidden, p.embedding, p.repeat_gate, identity)
        opt = torch.optim.Adam(self.net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        X_t, Y_t = torch.from_numpy(X), torch.from_numpy(Y)

        def step() -> float:
            self.net.train()
            perm = torch.randperm(len(X_t))
            total = 0.0
            for lo in range(0, len(perm), p.batch):
                idx = perm[lo:lo + p.batch]
                logp = torch.log_softmax(self._logits(X_t[idx]), dim=-1)[:, 1:]  # column 0 is padding
                y = Y_t[idx, 1:]
                loss = -(y * logp).sum() / y.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            return total / len(perm)

        return step

    def _export(self) -> dict[str, np.ndarray]:
        """The trained network as numpy arrays: scoring one basket at a time through torch costs
        far more in call overhead than the arithmetic (and stalls under a loaded CPU)."""
        sd = {k: v.detach().numpy().astype(np.float64) for k, v in self.net.state_dict().items()}
        n_feat = len(self.mean)
        w1 = sd["mlp.0.weight"].T
        net = {
            "mean": self.mean.numpy().astype(np.float64), "std": self.std.numpy().astype(np.float64),
            "w1x": w1[:n_feat], "cat1": sd["embed.weight"] @ w1[n_feat:] + sd["mlp.0.bias"],
            "w2": sd["mlp.2.weight"].T, "b2": sd["mlp.2.bias"], "w3": sd["mlp.4.weight"].T,
            "b3": sd["mlp.4.bias"][None, :] + sd["bias"][:, None],
        }
        if "gate.0.weight" in sd:
            net.update({"g1": sd["gate.0.weight"].T, "gb1": sd["gate.0.bias"],
                        "g2": sd["gate.2.weight"].T[:, 0], "gb2": sd["gate.2.bias"][0]})
        return net

    def network(self) -> dict[str, np.ndarray]:
        """The trained network as named arrays (what :meth:`restore` takes back); the rows of
        :data:`CATEGORY_ROWS` follow this fit's category index (0: padding). A blend's networks
        are named ``<i>/<array>``, in the order of :attr:`members`."""
        if len(self._nets) == 1:
            return {k: np.asarray(v) for k, v in self._nets[0].items()}
        return {f"{i}/{k}": np.asarray(v) for i, net in enumerate(self._nets) for k, v in net.items()}

    def restore(self, network: dict[str, np.ndarray], categories_then: np.ndarray, log, n: int,
                members: list[dict] | None = None) -> "LearnedRanker":
        """Score with a network trained by an earlier fit instead of training one: the feature
        state is built from the first ``n`` events of ``log`` (as :meth:`fit` leaves it), the
        network's per-category rows are moved from ``categories_then`` (that fit's category names,
        index c - 1 for category c) to this log's categories by name, and a category that fit
        never saw gets the mean of the others' rows (no learned identity, only its features).
        ``members``: that fit's :attr:`members`; without them a blend's identities and switch
        weights are unknown (None), a single network's are this ranker's parameters.

        Raises:
            ValueError: ``members`` does not name one member per network.
        """
        self.num_users, self.num_categories, self.width = log.num_users, log.num_categories, log.num_categories + 1
        self.state.fit(log, n)
        then = {name: i + 1 for i, name in enumerate(categories_then)}
        rows = np.array([0] + [then.get(c, -1) for c in log.categories], dtype=np.int64)
        parts: dict[str, dict] = {}
        for key, value in network.items():
            index, _, name = key.rpartition("/")
            parts.setdefault(index, {})[name] = np.asarray(value, dtype=np.float64)
        self._nets = [parts[index] for index in sorted(parts)]
        if members is not None and len(members) != len(self._nets):
            raise ValueError(f"learned_ranker: {len(members)} members for {len(self._nets)} networks")
        if members is not None or len(self._nets) > 1:
            self.members = [dict(m) for m in members] if members is not None else [
                {"category_identity": None, "switch_weight": None} for _ in self._nets]
        for net in self._nets:
            for key in CATEGORY_ROWS:
                old = net[key]
                mean = old[1:].mean(axis=0) if len(old) > 1 else np.zeros(old.shape[1:])
                net[key] = np.where((rows >= 0)[:, None], old[np.maximum(rows, 0)], mean)
        return self

    def _score_features(self, X: np.ndarray) -> np.ndarray:
        """``[n, C+1]`` scores of ``[n, C+1, F]`` features with the exported network; a blend's
        are its networks' log-probabilities averaged (column 0, padding, ``-inf``)."""
        if len(self._nets) == 1:
            return _network_scores(self._nets[0], X)
        return _blend([_network_scores(net, X) for net in self._nets])

    def _logits(self, x):
        import torch

        logits = self.net((x - self.mean) / self.std, x[..., EVER] > 0.5)
        return logits.masked_fill(torch.arange(self.width) == 0, float("-inf"))

    def _predict(self, X) -> np.ndarray:
        import torch

        # at most 2,048 baskets and 2^20 (basket, category) cells at once: the hidden layers of
        # 2,048 baskets of a 2,000-category catalogue would take 5 GB
        chunk = max(1, min(2048, PREDICT_CELLS // self.width))
        with torch.no_grad():
            return np.concatenate([self._logits(torch.from_numpy(X[i:i + chunk])).numpy()
                                   for i in range(0, len(X), chunk)]) if len(X) else np.zeros((0, self.width))

    def observe(self, users, categories, now):
        """Add the events of one timestamp to the feature state."""
        self.state.observe(np.asarray(users), np.asarray(categories), now)

    def scores(self, users, now):
        """The network's scores of every category (column 0, padding, is ``-inf``)."""
        s = self._score_features(self.state.features(users, now))
        s[:, 0] = -np.inf
        return s


class _Net:
    """Factory for the scoring network (kept out of module import so torch loads lazily)."""

    def __new__(cls, n_features: int, width: int, hidden: int, embedding: int, gate: bool = False,
                identity: bool = True):
        import torch

        embedding = embedding if identity else 0  # without identity: no embedding columns, and the bias stays zero

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.Embedding(width, embedding)
                self.mlp = torch.nn.Sequential(
                    torch.nn.Linear(n_features + embedding, hidden), torch.nn.ReLU(),
                    torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2 if gate else 1))
                self.bias = torch.nn.Parameter(torch.zeros(width), requires_grad=identity)
                if gate:  # P(repeat) from the per-user features (every column holds them; column 0 is padding)
                    self.gate = torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.ReLU(),
                                                    torch.nn.Linear(16, 1))

            def forward(self, x, ever):
                e = self.embed.weight.unsqueeze(0).expand(x.shape[0], -1, -1)
                out = self.mlp(torch.cat([x, e], dim=-1))
                if not gate:
                    return out[..., 0] + self.bias
                return _mixture(torch, out[..., 0] + self.bias, out[..., 1] + self.bias,
                                self.gate(x[:, 0]), ever)

        return Net()


def _network_scores(m: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """``[n, C+1]`` scores of ``[n, C+1, F]`` features with one exported network ``m``."""
    n, width, n_feat = X.shape
    x = (X.reshape(-1, n_feat).astype(np.float64) - m["mean"]) / m["std"]  # 2-D: BLAS matmuls
    h = np.maximum((x @ m["w1x"]).reshape(n, width, -1) + m["cat1"], 0.0).reshape(n * width, -1)
    h = np.maximum(h @ m["w2"] + m["b2"], 0.0)
    out = (h @ m["w3"]).reshape(n, width, -1) + m["b3"]
    if "g1" not in m:
        return out[..., 0]
    gate = np.maximum(x.reshape(n, width, -1)[:, 0] @ m["g1"] + m["gb1"], 0.0) @ m["g2"] + m["gb2"]
    return _mixture(np, out[..., 0], out[..., 1], gate[:, None], X[..., EVER] > 0.5)


def _blend(scores: list[np.ndarray]) -> np.ndarray:
    """The blend of networks' ``[n, C+1]`` scores: their log-probabilities over the categories
    averaged (column 0, padding, ``-inf``); one formula for the holdout that judges a blend and
    for scoring with it."""
    parts = []
    for s in scores:
        s = s.copy()
        s[:, 0] = -np.inf
        parts.append(_log_softmax(s))
    return np.mean(parts, axis=0)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-probabilities of the rows of ``z`` (``-inf`` entries get none of the mass)."""
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _mixture(xp, repeat, explore, gate, ever):
    """Log-probabilities of the repeat/explore mixture: ``P(c) = g * softmax_repeat(c)`` over the
    categories the user had (``ever``), ``(1 - g) * softmax_explore(c)`` over the others (column 0,
    padding, excluded), ``g = sigmoid(gate)``. ``xp`` is torch or numpy (one formula for training and
    scoring)."""
    if xp is np:
        log_softmax = _log_softmax
        log_sig = lambda z: -np.logaddexp(0.0, -z)  # noqa: E731
        where, col = np.where, np.arange(repeat.shape[-1])
    else:
        log_softmax, log_sig, where = (lambda z: xp.log_softmax(z, dim=-1)), xp.nn.functional.logsigmoid, xp.where
        col = xp.arange(repeat.shape[-1])
    explore_set = ~ever & (col > 0)
    lp_repeat = log_softmax(where(ever, repeat, -1e4)) + log_sig(gate)
    lp_explore = log_softmax(where(explore_set, explore, -1e4)) + log_sig(-gate)
    return where(ever, lp_repeat, lp_explore)


def _identity_words(identity: bool) -> str:
    return "with category identity" if identity else "without category identity"


def _ndcg_at_10(scores: np.ndarray, weights: np.ndarray) -> float:
    """Mean NDCG@10 of the target events against their basket's scores (ties against them), each
    (basket, category) weighted by ``weights`` (its count, times switch_weight for switch targets)."""
    ranks = all_ranks(scores)
    rows, cols = np.nonzero(weights[:, 1:])
    w = weights[:, 1:][rows, cols].astype(np.float64)
    gains = per_target_metrics(ranks[rows, cols], (10,))["ndcg@10"]
    return float((w * gains).sum() / w.sum()) if len(w) else 0.0
