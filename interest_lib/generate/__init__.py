"""Synthetic e-commerce store with planted interest migrations (the ``generate`` job).

Modules, in the order the data is made:

- :mod:`.catalogue`: category tree, items, search queries and review texts (pure Python).
- :mod:`.trajectories`: users' profiles, trajectory kinds, interest mixtures over time and the
  planted migrations (ground truth).
- :mod:`.events`: one user's sessions and funnel events with numpy; formatting to raw strings.
- :mod:`.dirt`: corrupted fields, duplicates and late arrivals.
- :mod:`.job`: Spark orchestration (``spark.range`` + ``mapInPandas``) and :func:`run_generate`.
"""

from interest_lib.generate.catalogue import Catalogue, build_catalogue
from interest_lib.generate.dirt import DIRT_KINDS
from interest_lib.generate.job import (
    events_frame, planted_migrations, profiles_frame, run_generate, simulate_users,
)
from interest_lib.generate.trajectories import KINDS, PLANTED_KINDS, Profile, draw_profile

__all__ = [
    "Catalogue", "build_catalogue", "DIRT_KINDS", "KINDS", "PLANTED_KINDS", "Profile",
    "draw_profile", "events_frame", "planted_migrations", "profiles_frame", "run_generate",
    "simulate_users",
]
