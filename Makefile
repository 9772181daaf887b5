# Uni-COAL benchmark. `make run`: set up and run the main job on the embedded cohort;
# `make test`: the whole test suite (fast unit tests first, then end-to-end runs);
# `make bench`: nextflow run main.nf -profile bench (docs/benchmark.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= results/test

.PHONY: setup run test test-fast test-slow bench benchmarks clean

setup:
	@scripts/setup.sh

run: setup
	@scripts/run_test_profile.sh $(OUT)

test: setup
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider
	$(PY) -m pytest -q -m slow -p no:cacheprovider; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-fast:
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

# the benchmark of the methods on the embedded cohort (issue #21, docs/benchmark.md; ~3 h on 2 cores)
bench: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/nextflow run main.nf -profile bench -resume

# the speed and size measurements of benchmarks/*.py, one after another
benchmarks: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf results work .nextflow .nextflow.log* .pytest_cache
