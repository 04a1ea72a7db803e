# The README's two commands: `make run` (whole pipeline on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install run test test-fast bench bench-training bench-scoring airflow-env clean

install:
	./scripts/bootstrap.sh

run: install
	$(VENV)/bin/interest run $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

test-fast: install
	$(PY) -m pytest -q -m unit $(ARGS)

bench: install
	$(PY) bench/bench_foundation.py $(ARGS)

bench-training: install
	$(PY) bench/bench_training.py $(ARGS)

bench-scoring: install
	$(PY) bench/bench_scoring.py $(ARGS)

airflow-env:
	./scripts/airflow_env.sh

clean:
	rm -rf warehouse data runs spark-warehouse .pytest_cache
