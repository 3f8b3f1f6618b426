# make run   : set-up + the default experiment (no network; about 2 minutes on a 2-core CPU)
# make test  : set-up + the whole test suite
# make bench : set-up + the speed benchmarks (results in benchmarks/RESULTS.md)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(PY) -m gan_jax.main --config=experiments/default.py --workdir=runs/default

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/steps_per_call.py
	$(PY) benchmarks/image_throughput.py --iterations 1 --repeats 2

clean:
	rm -rf runs $(VENV)
