"""No arrow runs back up the data flow among the modules this test names: each package below
never imports (at module level or inside a function) the packages listed for it."""

from __future__ import annotations

import ast
import pathlib

import pytest

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2] / "interest_lib"

#: package (or module) -> packages it must never import
FORBIDDEN = {
    "storage": ("ingest", "sessions", "features", "models", "training", "evaluate", "scoring", "runs"),
    "runs": ("ingest", "sessions", "features", "models", "training", "evaluate", "scoring"),
    "sequence_contract.py": ("storage", "features", "models", "training", "evaluate", "scoring"),
    "metrics.py": ("models", "training", "evaluate", "scoring"),
    "event_stream.py": ("storage", "features", "models", "training", "evaluate", "scoring"),
    "pseudonymise.py": ("ingest", "features", "models", "training", "evaluate", "scoring"),
    "features": ("ingest", "models", "training", "evaluate", "scoring"),
    "models": ("training", "evaluate", "scoring"),
    "evaluate": ("training", "scoring"),
    "scoring": ("training", "evaluate"),
}


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_no_upward_imports(where):
    target = ROOT / where
    files = [target] if target.suffix == ".py" else sorted(target.glob("*.py"))
    assert files, where
    for path in files:
        upward = sorted(m for m in _imports(path)
                        if any(m == f"interest_lib.{p}" or m.startswith(f"interest_lib.{p}.")
                               for p in FORBIDDEN[where]))
        assert not upward, f"{path.relative_to(ROOT.parent)} imports {upward}"
