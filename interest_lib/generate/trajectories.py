"""Users' interest trajectories: who likes what, and how it changes over the period.

Every user gets a :class:`Profile` drawn from ``np.random.default_rng([seed, user, 0])``, so a
user's profile is the same whichever Spark partition (or process) draws it. A profile holds
1-3 primary leaf categories with weights, a trajectory *kind*, and the kind's parameters;
:func:`mixture` turns it into the user's interest mixture at any time.

Kinds and their shares (:data:`KIND_SHARES`):

- ``stable`` (30%): the primary mixture all period long.
- ``gradual`` (20%): the dominant primary fades linearly into a new leaf (of the same family
  half the time, else of another family) over 3-6 weeks.
- ``abrupt`` (20%): at one instant the dominant primary is replaced by a leaf of another family.
- ``seasonal`` (10%): alternates between the primaries and a seasonal leaf (garden, sports,
  fashion: garden in spring, swimwear in summer) that takes 75% during its season; phases last
  20-40% of the period (2.5-5 weeks over 84 days), the first switch comes after 10-35%.
- ``life_stage`` (10%): a new family (baby; home if the user already follows baby) appears and
  ramps up over 2-4 weeks to 70% of the user's interest, spread over two of its leaves.
- ``burst`` (10%): for 1-4 days an unrelated leaf takes 85% of the interest (with more sessions
  than usual), then the user returns to the primaries.

Planted ground truth (``ref.planted_migrations``): one row per change of the *dominant*
interest that lasts, i.e. for ``abrupt``, ``gradual``, ``life_stage`` and every switch of a
``seasonal`` user (both directions). ``burst`` is deliberately NOT planted: it is a transient
lasting less than a week, a negative example a migration detector should not flag. The
migration time is the first instant at which ``to_category``'s weight in the mixture exceeds
``from_category``'s: the switch instant for abrupt and seasonal, the middle of the drift for
gradual, and the crossing point of the ramp for life_stage. ``from_category`` is always the
user's dominant primary leaf (or the seasonal leaf when a seasonal user switches back).

On top of the mixture, :data:`NOISE_SHARE` of all category draws explore the catalogue at
random (weighted by global leaf popularity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interest_lib.generate.catalogue import LIFE_STAGE_FAMILIES, SEASONAL_FAMILIES, Catalogue

KINDS = ("stable", "gradual", "abrupt", "seasonal", "life_stage", "burst")
KIND_SHARES = (0.30, 0.20, 0.20, 0.10, 0.10, 0.10)
#: Kinds whose changes are written to ref.planted_migrations.
PLANTED_KINDS = ("gradual", "abrupt", "seasonal", "life_stage")
#: Share of category draws that explore at random instead of following the mixture.
NOISE_SHARE = 0.10
#: Event sources (channels) and the share of users whose main device each one is.
SOURCES = ("web", "app", "ios", "android")
SOURCE_SHARES = (0.35, 0.25, 0.20, 0.20)
#: Share of users whose device clock is off by a few minutes (realistic, undetectable).
CLOCK_SKEW_SHARE = 0.04

DAY = 86400.0
_N_PRIMARY_CDF = np.array([0.4, 0.8])           # 1, 2 or 3 primary leaves: 40/40/20%
_SOURCE_CDF = np.cumsum(SOURCE_SHARES)[:-1]
_KIND_CDF = np.cumsum(KIND_SHARES)[:-1]
_ACTIVITY_SIGMA = 0.8        # log-normal sigma of the number of events per user
_SEASONAL_WEIGHT = 0.75      # share of the seasonal leaf during its season
_LIFE_STAGE_MASS = 0.70      # share the new family reaches after the ramp
_LIFE_STAGE_SPLIT = (0.65, 0.35)
_BURST_WEIGHT = 0.85


@dataclass
class Profile:
    """One user's tastes and trajectory; times are seconds from the period start."""

    user: int
    kind: str
    leaves: np.ndarray            # candidate leaf indices (primaries first, then extras)
    base: np.ndarray              # weights over ``leaves`` before any change (extras 0)
    n_events: int                 # target number of events in the period
    device: int                   # index into SOURCES of the user's main device
    hour_shift: int               # the user's daily rhythm, hours later (+) or earlier (-)
    clock_skew_s: int             # device clock offset added to every event time
    t0: float = 0.0               # start of the change (switch instant, drift/ramp/burst start)
    t1: float = 0.0               # end of the drift / ramp / burst
    switches: np.ndarray = field(default_factory=lambda: np.empty(0))  # seasonal switch times
    migrations: list = field(default_factory=list)  # (time_s, from_leaf, to_leaf) planted

    @property
    def raw_user_id(self) -> str:
        """The raw (not yet pseudonymised) user id, e.g. ``u0000042``."""
        return raw_user_id(self.user)


def raw_user_id(user: int) -> str:
    """Raw user id of user index ``user``: ``u`` + 7 digits."""
    return f"u{user:07d}"


def _pick(rng: np.random.Generator, weights: np.ndarray, allowed: np.ndarray) -> int:
    """One index drawn with probability proportional to ``weights`` among ``allowed``."""
    cum = np.cumsum(np.where(allowed, weights, 0.0))
    if cum[-1] <= 0:
        raise ValueError("no allowed category to pick from")
    return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(cum) - 1))


def _span(rng: np.random.Generator, lo_days: float, hi_days: float, room: float) -> float:
    """A duration of lo..hi days, shrunk to fit into ``room`` seconds (short test periods)."""
    return min(rng.uniform(lo_days, hi_days) * DAY, max(room, 0.0) * 0.9)


def draw_profile(seed: int, user: int, cat: Catalogue, days: int,
                 mean_events: float) -> Profile:
    """Draw user ``user``'s profile deterministically from ``[seed, user]``.

    Args:
        seed: generator seed.
        user: user index (0-based).
        cat: the catalogue.
        days: length of the period.
        mean_events: mean number of events per user (activity is log-normal around it).

    Returns:
        The :class:`Profile`, with its planted migrations (empty for stable and burst).
    """
    rng = np.random.default_rng([seed, user, 0])
    period = days * DAY
    kind = KINDS[int(np.searchsorted(_KIND_CDF, rng.random(), side="right"))]
    pop = cat.leaf_popularity
    fam = cat.leaf_family
    n_primary = 1 + int(np.searchsorted(_N_PRIMARY_CDF, rng.random(), side="right"))
    is_primary = np.zeros(cat.n_leaves, dtype=bool)
    primaries = [_pick(rng, pop, ~is_primary)]
    is_primary[primaries[0]] = True
    while len(primaries) < n_primary:
        allowed = ~is_primary
        if rng.random() < 0.5:
            same = allowed & (fam == fam[primaries[0]])
            allowed = same if same.any() else allowed
        primaries.append(_pick(rng, pop, allowed))
        is_primary[primaries[-1]] = True
    weights = np.sort(rng.dirichlet(np.full(n_primary, 2.0)))[::-1]

    mu = np.log(mean_events) - _ACTIVITY_SIGMA ** 2 / 2
    n_events = int(np.clip(round(rng.lognormal(mu, _ACTIVITY_SIGMA)), 1,
                           min(40 * mean_events, 900_000)))
    device = int(np.searchsorted(_SOURCE_CDF, rng.random(), side="right"))
    hour_shift = int(rng.integers(-3, 4))
    skew = 0
    if rng.random() < CLOCK_SKEW_SHARE:
        skew = int(np.clip(round(rng.normal(0, 150)), -600, 600)) or 45

    prof = Profile(user, kind, np.array(primaries), weights, n_events, device, hour_shift, skew)
    fam_followed = np.zeros(len(cat.families), dtype=bool)
    fam_followed[fam[primaries]] = True
    primary_fams = fam_followed[fam]
    not_primary = ~is_primary
    first = primaries[0]

    if kind == "abrupt":
        to = _pick(rng, pop, not_primary & ~primary_fams)
        prof.t0 = rng.uniform(0.3, 0.7) * period
        prof.migrations = [(prof.t0, first, to)]
    elif kind == "gradual":
        same = not_primary & (fam == fam[first])
        to = _pick(rng, pop, same if (rng.random() < 0.5 and same.any())
                   else not_primary & ~primary_fams)
        prof.t0 = rng.uniform(0.15, 0.5) * period
        prof.t1 = prof.t0 + _span(rng, 21, 42, 0.95 * period - prof.t0)
        prof.migrations = [((prof.t0 + prof.t1) / 2, first, to)]
    elif kind == "life_stage":
        new_fam = next((f for f in LIFE_STAGE_FAMILIES
                        if not fam_followed[cat.families.index(f)]), LIFE_STAGE_FAMILIES[-1])
        in_fam = (fam == cat.families.index(new_fam)) & not_primary
        a = _pick(rng, pop, in_fam)
        in_fam[a] = False
        b = _pick(rng, pop, in_fam)
        to = a
        prof.leaves = np.array(primaries + [a, b])
        prof.t0 = rng.uniform(0.2, 0.5) * period
        prof.t1 = prof.t0 + _span(rng, 14, 28, 0.9 * period - prof.t0)
        share_a = _LIFE_STAGE_MASS * _LIFE_STAGE_SPLIT[0]
        f_cross = weights[0] / (share_a + _LIFE_STAGE_MASS * weights[0])
        prof.migrations = [(prof.t0 + f_cross * (prof.t1 - prof.t0), first, a)]
    elif kind == "seasonal":
        seasonal = np.zeros(len(cat.families), dtype=bool)
        seasonal[[cat.families.index(f) for f in SEASONAL_FAMILIES]] = True
        seasonal &= ~fam_followed
        allowed = not_primary & (seasonal[fam] if seasonal.any() else fam != fam[first])
        to = _pick(rng, pop, allowed)
        t = rng.uniform(0.1, 0.35) * period
        switches = []
        while t < 0.95 * period:
            switches.append(t)
            t += max(rng.uniform(0.2, 0.4) * period, min(14 * DAY, 0.25 * period))
        prof.switches = np.array(switches)
        prof.migrations = [(s, first, to) if i % 2 == 0 else (s, to, first)
                           for i, s in enumerate(switches)]
    elif kind == "burst":
        to = _pick(rng, pop, not_primary & ~primary_fams)
        prof.t0 = rng.uniform(0.2, 0.8) * period
        prof.t1 = prof.t0 + _span(rng, 1, 4, period - prof.t0)
    if kind in ("abrupt", "gradual", "seasonal", "burst"):
        prof.leaves = np.array(primaries + [to])
    prof.base = np.concatenate([weights, np.zeros(len(prof.leaves) - n_primary)])
    return prof


def mixture(prof: Profile, t: np.ndarray) -> np.ndarray:
    """The user's interest weights over ``prof.leaves`` at times ``t`` (rows sum to 1)."""
    t = np.asarray(t, dtype=float)
    w = np.tile(prof.base, (len(t), 1))
    n_primary = int((prof.base > 0).sum())
    if prof.kind == "abrupt":
        after = t >= prof.t0
        w[after, -1] = prof.base[0]
        w[after, 0] = 0.0
    elif prof.kind == "gradual":
        f = np.clip((t - prof.t0) / max(prof.t1 - prof.t0, 1.0), 0.0, 1.0)
        w[:, 0] = prof.base[0] * (1 - f)
        w[:, -1] = prof.base[0] * f
    elif prof.kind == "life_stage":
        m = _LIFE_STAGE_MASS * np.clip((t - prof.t0) / max(prof.t1 - prof.t0, 1.0), 0.0, 1.0)
        w[:, :n_primary] *= (1 - m)[:, None]
        w[:, n_primary] = m * _LIFE_STAGE_SPLIT[0]
        w[:, n_primary + 1] = m * _LIFE_STAGE_SPLIT[1]
    elif prof.kind == "seasonal":
        in_season = (np.searchsorted(prof.switches, t, side="right") % 2) == 1
        w[in_season, :n_primary] *= 1 - _SEASONAL_WEIGHT
        w[in_season, -1] = _SEASONAL_WEIGHT
    elif prof.kind == "burst":
        inside = (t >= prof.t0) & (t < prof.t1)
        w[inside, :n_primary] *= 1 - _BURST_WEIGHT
        w[inside, -1] = _BURST_WEIGHT
    return w / w.sum(axis=1, keepdims=True)


def sample_leaves(rng: np.random.Generator, prof: Profile, t: np.ndarray,
                  noise_cdf: np.ndarray) -> np.ndarray:
    """One leaf per time in ``t``: from the mixture at that time, or random exploration."""
    w = np.cumsum(mixture(prof, t), axis=1)
    u = rng.random(len(t))
    idx = np.minimum((u[:, None] >= w).sum(axis=1), len(prof.leaves) - 1)
    leaves = prof.leaves[idx]
    noise = rng.random(len(t)) < NOISE_SHARE
    if noise.any():
        leaves[noise] = np.minimum(np.searchsorted(noise_cdf, rng.random(int(noise.sum())),
                                                   side="right"), len(noise_cdf) - 1)
    return leaves
