"""The notebooks run headless against the small pipeline's tables and draw every figure.

Each notebook is executed with nbclient in a fresh kernel of *this* interpreter (a kernelspec in
a temp JUPYTER_PATH, so no other Python's kernel can be picked up), with INTEREST_WAREHOUSE
pointing at the pipeline fixture's warehouse and INTEREST_FIGURES at a temp folder where the
notebooks' ``show()`` also saves each figure. A failing cell raises CellExecutionError.
"""

import json
import struct
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# Not rerun in the card env: the notebooks' readers mirror interest_lib.storage.arrow_snapshot,
# whose unit tests (tests/unit/test_arrow_snapshot.py) run there under pyarrow 14.
pytestmark = [pytest.mark.integration]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

#: The figures (saved as <name>.png) each notebook must draw, one inline PNG output each.
FIGURES = {
    "exploration.ipynb": {"user_heatmap", "migration_flows", "stages", "model_metrics", "drift"},
    "bi_gold_tables.ipynb": {"top_next_categories", "p_switch", "recommendations", "top_flows"},
}

#: Appended to the executed copy: which interpreter ran the kernel, and whether Spark was loaded.
PROBE = ('import json, sys\n'
         'print("PROBE " + json.dumps({"prefix": sys.prefix,\n'
         '                             "pyspark": "pyspark" in sys.modules}))')


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def kernel_env(tmp_path, monkeypatch, pipeline):
    """Environment of the notebook kernel: this venv's python3 kernelspec, the pipeline's tables."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (project venv)", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile/startup files
    monkeypatch.setenv("MPLBACKEND", "Agg")  # headless; the notebooks select the inline backend
    _settings, _tables, conf = pipeline
    monkeypatch.setenv("INTEREST_WAREHOUSE", str(conf.storage.warehouse))
    monkeypatch.setenv("INTEREST_MIN_GROUP_SIZE", str(conf.migration.min_group_size))
    monkeypatch.delenv("INTEREST_USER", raising=False)
    figures = tmp_path / "figures"
    monkeypatch.setenv("INTEREST_FIGURES", str(figures))
    return figures


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_headless_and_draws_its_figures(name, kernel_env):
    path = NOTEBOOKS / name
    stored = nbformat.read(path, as_version=4)
    nbformat.validate(stored)
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), \
        f"{name} must be saved without outputs"

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    started = time.monotonic()
    NotebookClient(nb, kernel_name="python3", timeout=180, startup_timeout=90,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    elapsed = time.monotonic() - started

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    probe = json.loads(next(o.text for o in outputs if o.output_type == "stream"
                            and o.text.startswith("PROBE ")).split(" ", 1)[1])
    assert Path(probe["prefix"]).resolve() == Path(sys.prefix).resolve(), \
        "the kernel must run the project's interpreter"
    if name == "bi_gold_tables.ipynb":
        assert probe["pyspark"] is False, "the BI notebook must read the gold tables without Spark"
        # The reasons section ran on the stored explanations, all short.
        said = "".join(o.text for o in outputs if o.output_type == "stream")
        longest = int(said.split("reasons are at most ", 1)[1].split()[0])
        assert 0 < longest < 160
        assert "exact counts (no differential privacy)" in said

    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == len(FIGURES[name]), f"{name}: {len(pngs)} inline figures"
    saved = {p.stem: p for p in kernel_env.glob("*.png")}
    assert set(saved) == FIGURES[name]
    for fig, p in saved.items():
        width, height = _png_size(p)
        assert width >= 600 and height >= 300 and p.stat().st_size > 10_000, (fig, width, height)
    assert elapsed < 120, f"{name} took {elapsed:.0f} s"
