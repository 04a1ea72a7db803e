"""Event-level fits kept between scoring runs (``score.event_refit_days``).

Serving ``event:learned_ranker`` trains its network on the replayed history: most of a scoring
run's 18 minutes on Complete Journey. A daily run would train it again every day, although a
day's events hardly move the weights: they move the model's *state* (counts, recencies,
neighbours), which is rebuilt at every run anyway. So a fit is kept in the run store:

    <train.store>/event-models/<name>/<fit id>/
        network.npz   the learned ranker's network, or a blend's networks as ``<i>/<array>``
                      (per-category rows in fit.json's category order)
        fit.json      the events table (location, version) and as-of time it was fitted on, the
                      model code's fingerprint, the ranker's parameters and its networks' members
                      (category identity and switch weight each), the baseline settings chosen on
                      validation, the categories; written last: a folder without it is ignored

A later run whose as-of time is at most ``score.event_refit_days`` days after a kept fit's (never
before it: a backfill is fitted on its own past), on the same events table and the same model
code (and for the learned ranker the same ``score.event_ranker`` parameters), reuses its settings
and network and only builds the state from the events before its own as-of time. Popularity,
decayed frequency and Markov have nothing to keep. The newest :data:`KEEP_FITS` fits per model and
table are kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from interest_lib.runs import fs

#: Fits kept per (model, events table); older ones are removed when a new one is written.
KEEP_FITS = 8
_TIME = "%Y-%m-%dT%H:%M:%S"
#: Modules whose code decides what a fit learns or how it is kept: a change to any of them is a new fit.
_CODE = ("interest_lib.models.event_ranker", "interest_lib.models.event_baselines", "interest_lib.event_stream",
         "interest_lib.scoring.event_fits")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the event models' source (:data:`_CODE`), read through the module loaders (as
    training's model fingerprint: works when interest_lib is shipped as a zip); read once per
    process (a run looks for a fit and keeps one)."""
    import importlib

    digest = hashlib.sha256()
    for module in _CODE:
        digest.update(importlib.import_module(module).__loader__.get_source(module).encode())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class KeptFit:
    """One kept fit: its folder and its ``fit.json``."""

    location: str
    record: dict

    @property
    def fitted_at(self) -> dt.datetime:
        """The as-of time the fit was made at (naive UTC)."""
        return dt.datetime.strptime(self.record["as_of"], _TIME)

    @property
    def fit_id(self) -> str:
        """The fit's folder name."""
        return fs.basename(self.location)

    def settings(self) -> tuple[dict, str] | None:
        """(chosen setting per baseline, best baseline) as :func:`.event_models.event_settings`
        returns them, or None where the fit chose none."""
        from interest_lib.models.event_baselines import Candidate

        kept = self.record.get("settings")
        if not kept:
            return None
        return {name: Candidate(c["family"], c["params"]) for name, c in kept["chosen"].items()}, kept["best"]

    def network(self) -> dict[str, np.ndarray]:
        """The learned ranker's network arrays."""
        with np.load(io.BytesIO(fs.read_bytes(fs.join(self.location, "network.npz")))) as z:
            return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class FitStore:
    """Where a scoring run looks for and keeps its event model's fit: the run store's
    ``event-models`` folder, for one events table."""

    root: str
    """The run store (``train.store``, canonical)."""
    table: str
    """The events table's identity (its canonical location): another warehouse's fits never match."""
    events_version: int
    """The events table version the run reads (recorded, not matched: versions grow daily)."""
    max_days: float
    """``score.event_refit_days``: the oldest fit reused, in days before the run's as-of time."""

    def folder(self, name: str) -> str:
        """``<root>/event-models/<name>``."""
        return fs.join(self.root, "event-models", name)

    def fits(self, name: str, params: dict | None = None) -> list[KeptFit]:
        """The complete fits of ``name`` on this table with the current code (and, given
        ``params``, made with those model parameters), oldest first."""
        code, found = code_fingerprint(), []
        for record_file in fs.glob(fs.join(self.folder(name), "*", "fit.json")):
            record = json.loads(fs.read_bytes(record_file))
            if (record.get("table") == self.table and record.get("code") == code and record.get("name") == name
                    and (params is None or record.get("params") == params)):
                found.append(KeptFit(record_file[: -len("/fit.json")], record))
        return sorted(found, key=lambda f: (f.record["as_of"], f.record["written_at"]))

    def find(self, name: str, when: dt.datetime, params: dict | None = None) -> Optional[KeptFit]:
        """The newest fit of ``name`` made at most ``max_days`` days before ``when`` and not after
        it (given ``params``, with those model parameters); None when there is none."""
        usable = [f for f in self.fits(name, params)
                  if dt.timedelta(0) <= when - f.fitted_at <= dt.timedelta(days=self.max_days)]
        return usable[-1] if usable else None

    def save(self, name: str, when: dt.datetime, model, settings: tuple[dict, str] | None,
             categories: np.ndarray, log_line: Callable[[str], None] = print) -> KeptFit:
        """Keep the fit of ``model`` (made at ``when`` on the log whose category names are
        ``categories``), then remove this table's fits of ``name`` beyond the newest
        :data:`KEEP_FITS`."""
        code = code_fingerprint()
        params = dataclasses.asdict(model.params) if hasattr(model, "network") else None
        # the parameters are part of the folder's name: a fit with others at the same as_of is another fit
        key = json.dumps([self.table, name, code, when.strftime(_TIME)] + ([params] if params else [])).encode()
        location = fs.join(self.folder(name), f"{when:%Y%m%dT%H%M%S}-{hashlib.sha256(key).hexdigest()[:8]}")
        record = {"name": name, "table": self.table, "events_version": self.events_version,
                  "as_of": when.strftime(_TIME), "code": code,
                  "written_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).strftime(_TIME),
                  "categories": [str(c) for c in categories]}
        if settings is not None:
            chosen, best = settings
            record["settings"] = {"chosen": {n: {"family": c.family, "params": c.params} for n, c in chosen.items()},
                                  "best": best}
        if hasattr(model, "network"):
            record["params"] = params
            record["members"] = model.members
            buf = io.BytesIO()
            np.savez(buf, **model.network())
            fs.write_bytes(fs.join(location, "network.npz"), buf.getvalue())
        fs.write_bytes(fs.join(location, "fit.json"), json.dumps(record, indent=1).encode())  # last: complete
        kept = KeptFit(location, record)
        for old in self.fits(name)[:-KEEP_FITS]:
            if old.location != kept.location:  # a backfill's fit is older than the rest: still kept
                fs.remove_tree(old.location)
        log_line(f"event:{name}: fit kept at {location}")
        return kept


def restore_model(kept: KeptFit, log, n: int, log_line: Callable[[str], None] = print):
    """The model of ``kept`` with its state built from the first ``n`` events of ``log``: the
    baselines rebuilt from their chosen settings, the learned ranker with the kept network."""
    name = kept.record["name"]
    if name == "learned_ranker":
        from interest_lib.models.event_ranker import LearnedRanker, RankerParams

        ranker = LearnedRanker(RankerParams(**kept.record["params"]), log_line=log_line)
        return ranker.restore(kept.network(), np.array(kept.record["categories"], dtype=object), log, n,
                              members=kept.record["members"])
    chosen, _ = kept.settings()
    return chosen[name].build().fit(log, n)
