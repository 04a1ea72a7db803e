"""The README's map is true: every ``interest_lib`` import (module level or inside a function)
of each module is one its row allows, so no arrow runs back up the data flow."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = REPO / "interest_lib"


def import_map() -> dict[str, set[str] | None]:
    """Module -> modules it may import (None = any), from the README's table."""
    text = (REPO / "README.md").read_text()
    table = text.split("<!-- import-map:start -->")[1].split("<!-- import-map:end -->")[0]
    allowed = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`([a-z_]+)`", cells[0])
        may = None if cells[2] == "any" else set(re.findall(r"`([a-z_]+)`", cells[2]))
        allowed.update({n: may for n in names})
    return allowed


def imports_of(module: str, package: pathlib.Path = PACKAGE) -> set[str]:
    """Top-level ``interest_lib`` modules that ``module`` (a package or a .py) imports."""
    target = package / module
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            found.update(n.split(".")[1] for n in names if n.startswith("interest_lib."))
    return found - {module}


def test_the_map_names_every_module_of_the_package():
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules == set(import_map())


@pytest.mark.parametrize("module", sorted(import_map()))
def test_no_module_imports_outside_its_row(module):
    may = import_map()[module]
    if may is None:
        return
    assert imports_of(module) <= may, f"interest_lib.{module} imports {sorted(imports_of(module) - may)}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "x.py").write_text(
        "import interest_lib.storage.catalog\n"
        "def f():\n    from interest_lib.models import InputSizes\n    from . import y\n")
    found = imports_of("features", tmp_path)
    assert found == {"storage", "models"}
    assert not found <= import_map()["features"]  # features importing models is refused
