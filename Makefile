# Uni-COAL benchmark. `make run`: set up and run the main job on the embedded cohort;
# `make test`: the whole test suite (fast unit tests first, then end-to-end runs).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= results/test

.PHONY: setup run test test-fast test-slow bench clean

setup:
	@scripts/setup.sh

run: setup
	@scripts/run_test_profile.sh $(OUT)

test: setup
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider
	$(PY) -m pytest -q -m slow -p no:cacheprovider; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-fast:
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

bench:
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf results work .nextflow .nextflow.log* .pytest_cache
