"""The collection check of tests/conftest.py: every test has exactly one kind marker."""

import pytest

from tests import conftest
from tests.kinds import KINDS, kind_problems

pytestmark = pytest.mark.unit


class _Item:
    """What the check reads of a collected item: its node id and its markers."""

    def __init__(self, nodeid, *markers):
        self.nodeid, self._marks = nodeid, [getattr(pytest.mark, name).mark for name in markers]

    def iter_markers(self):
        return iter(self._marks)


def test_one_kind_per_test_passes():
    items = [_Item(f"tests/x.py::test_{kind}", kind) for kind in KINDS]
    items.append(_Item("tests/x.py::test_extra", "integration", "card_env", "timeout", "parametrize"))
    assert kind_problems(items) == []
    conftest.pytest_collection_modifyitems(None, items)  # no error


@pytest.mark.parametrize("markers, found", [((), "none"), (("unit", "spark"), "spark, unit"),
                                             (("card_env",), "none"), (("integration", "cluster"), "cluster, integration")])
def test_a_test_without_exactly_one_kind_fails_the_collection(markers, found):
    items = [_Item("tests/x.py::test_ok", "unit"), _Item("tests/x.py::test_bad", *markers)]
    assert kind_problems(items) == [
        f"tests/x.py::test_bad: kind markers {found} (want exactly one of unit, spark, integration, cluster, card)"]
    with pytest.raises(pytest.UsageError, match=r"tests/x.py::test_bad: kind markers"):
        conftest.pytest_collection_modifyitems(None, items)
