# The README's two commands: `make run` (whole pipeline on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install run test test-fast bench clean

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

clean:
	rm -rf warehouse data spark-warehouse .pytest_cache
