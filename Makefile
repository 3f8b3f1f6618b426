# make run   : set-up + the default experiment (no network; about 2 minutes on a 2-core CPU)
# make test  : set-up + the whole test suite
# make bench : set-up + the speed benchmarks (results in benchmarks/RESULTS.md; vs PyTorch needs
#              torch in $(TORCH_VENV), made here if missing: a large download from PyPI)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch for benchmarks/vs_pytorch.py lives in its own venv (torch is no dependency of gan_jax).
TORCH_VENV ?= /tmp/torchvenv
TORCH_PY := $(TORCH_VENV)/bin/python

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

bench: setup $(TORCH_PY)
	$(PY) benchmarks/steps_per_call.py
	$(PY) benchmarks/image_throughput.py --iterations 1 --repeats 2
	$(PY) benchmarks/vs_pytorch.py --torch-python $(TORCH_PY) --repeats 3
	$(PY) benchmarks/vs_pytorch.py --torch-python $(TORCH_PY) --repeats 3 --workloads dcgan_ns \
	    --cores 1 --section vs_pytorch_1core
	$(PY) benchmarks/loop_overhead.py
	$(PY) benchmarks/compile_times.py

$(TORCH_PY):
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_PY) -m pip install --quiet torch==2.14.1 numpy

clean:
	rm -rf runs $(VENV)
