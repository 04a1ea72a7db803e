# The README's two commands: `make run` (whole pipeline on the embedded default) and `make test`.
VENV ?= .venv
# Python caches compiled modules (.pyc) in the venv and the checkout, even where the environment
# says not to (these machines and CI set PYTHONDONTWRITEBYTECODE=1): without the cache every
# Python process of a run or the tests (Spark's workers, torchrun's ranks, jobs run as
# subprocesses) compiles torch, transformers and pyspark again, ~4 CPU s each; the clean-clone
# test suite took 170 s longer.
unexport PYTHONDONTWRITEBYTECODE
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install run report test test-default test-fast bench bench-training bench-scoring bench-scale gpu-check airflow-env install-card test-card test-card-env test-card-all bench-card clean

install:
	./scripts/bootstrap.sh

run: install
	$(VENV)/bin/interest run $(ARGS)

# The HTML run report of the tables as they are now (`make run` writes one per run already).
report: install
	$(VENV)/bin/interest report $(ARGS)

# The whole suite in .venv and, side by side with it (scripts/test_suites.sh: separate runs, logs
# and temp folders; TEST_PARALLEL=0 runs them one after the other), in .venv-card (the design
# card's pinned stack: pyspark 4.0, delta-spark 4.0.1, pyarrow 14, numpy 1.x, pandas 2.2) only what
# differs there: tests/card (the Petastorm + Horovod path end to end: ingest -> featurize with the
# embedding UDFs -> train on both paths -> evaluate -> score, on the card's pins) and the Spark
# and unit tests marked card_env (storage on both engines, the snapshot reader and the training
# feed under pyarrow 14, table contracts, ingest's pyarrow reader, the features' pandas UDFs,
# cold-start scoring, the run report's pandas frames). Everything else runs once, in .venv.
# .venv-card is layered on .venv's torch and built while .venv's runs start; the horovod wheel is
# cached outside the repo.
CARD_SELECT := card or card_env
export CARD_SELECT
test: install
	PY=$(PY) CARD_VENV=$(CARD_VENV) ARGS="$(ARGS)" ./scripts/test_suites.sh

test-default: install
	$(PY) -m pytest -q $(ARGS)

test-fast: install
	$(PY) -m pytest -q -m unit $(ARGS)

bench: install
	$(PY) bench/bench_foundation.py $(ARGS)

bench-training: install
	$(PY) bench/bench_training.py $(ARGS)

bench-scoring: install
	$(PY) bench/bench_scoring.py $(ARGS)

bench-scale: install
	$(PY) bench/bench_scale.py $(ARGS)

gpu-check:
	./scripts/gpu_check.sh $(ARGS)

airflow-env:
	./scripts/airflow_env.sh

clean:
	rm -rf warehouse data runs reports spark-warehouse .pytest_cache

# The design card's path (Petastorm feeds Horovod) in its own pinned environment: see README.
CARD_VENV ?= .venv-card

# .venv first: the card venv takes torch and its CUDA libraries from it (install_card_env.sh).
install-card: install
	BASE_VENV=$(VENV) ./scripts/install_card_env.sh $(CARD_VENV)

test-card: install-card
	$(CARD_VENV)/bin/python -m pytest -q -m card tests/card

test-card-env: install-card
	$(CARD_VENV)/bin/python -m pytest -q -m "$(CARD_SELECT)" $(ARGS)

test-card-all: install-card
	$(CARD_VENV)/bin/python -m pytest -q $(ARGS)

bench-card: install-card
	$(CARD_VENV)/bin/python bench/bench_card.py $(ARGS)
