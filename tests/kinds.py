"""Every test is of exactly one kind, named by its marker (pytest.ini registers them):

unit (no Spark), spark (the shared local session), integration (several jobs end to end),
cluster (a Spark standalone cluster), card (the design card's environment, .venv-card).

tests/conftest.py fails the collection when a test has none or several of them, so a new test
file cannot silently fall out of ``-m unit`` / ``-m spark`` / the card environment's selection.
"""

from __future__ import annotations

from typing import Iterable

KINDS = ("unit", "spark", "integration", "cluster", "card")


def kind_problems(items: Iterable) -> list[str]:
    """One line per collected item that does not carry exactly one of :data:`KINDS`."""
    problems = []
    for item in items:
        kinds = sorted({m.name for m in item.iter_markers() if m.name in KINDS})
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            problems.append(f"{item.nodeid}: kind markers {found} (want exactly one of {', '.join(KINDS)})")
    return problems
