# make run   : set-up + the default experiment (no network; about 2 minutes on a 2-core CPU)
# make test  : set-up + the whole test suite
# make lock  : refresh requirements-lock.txt (the exact versions make setup installs) from PyPI
# make bench : set-up + the speed benchmarks (results in benchmarks/RESULTS.md; vs PyTorch needs
#              torch in $(TORCH_VENV), made here if missing: a large download from PyPI)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK ?= requirements-lock.txt
LOCK_VENV ?= /tmp/gan_jax_lock_venv
# PyTorch for benchmarks/vs_pytorch.py lives in its own venv (torch is no dependency of gan_jax).
TORCH_VENV ?= /tmp/torchvenv
TORCH_PY := $(TORCH_VENV)/bin/python

.PHONY: setup lock run test bench clean

setup: $(VENV)/.installed

# Installs from the committed lock of exact versions (what CI is known green on).
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[test]'
	touch $@

# Refreshes the lock: the newest releases allowed by pyproject.toml's floors, in a scratch venv.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[test]'
	{ sed -n '/^#/p' $(LOCK); $(LOCK_VENV)/bin/python -m pip freeze --all --exclude gan_jax \
	    | grep -v -e '^setuptools==' -e '^wheel=='; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)

run: setup
	$(PY) -m gan_jax.main --config=experiments/default.py --workdir=runs/default

# Two pytest workers (pytest-xdist): the suite is mostly compiles and small single-threaded
# steps; on a 2-core machine 674 tests took 26.6 min this way (51 min of CPU time).
test: setup
	$(PY) -m pytest -q -n 2 tests

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
