# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# torch is installed on its own first, pinned: an open torch requirement resolved by pip
# would pull a multi-GB CUDA build on a machine that only needs the CPU wheel.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: venv demo test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[test,sweep,tensorboard,wandb]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) launch_experiment.py configs/point-robot-quick.json

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# two workers, one test file each at a time (the module fixtures train shared runs once)
test: lint
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

bench: venv
	$(PY) benchmarks/learning_curve.py

clean:
	rm -rf $(VENV) build *.egg-info
