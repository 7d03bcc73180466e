# Two entry points from a fresh clone: `make demo` and `make test`.
# Both create or update the virtual environment .venv at the repo root first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint venv bench clean

venv: $(STAMP)

# torch is installed on its own first (pip takes the local CPU wheel for 2.13.0);
# everything else is installed under constraints.txt, which pins torch to +cpu so
# no dependency can pull a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rl-pipeline demo --config configs/demo.yaml --out runs/demo

test: lint
	$(PY) -m pytest -q -p no:cacheprovider

# the quick loop while editing (under 2 minutes on 2 cores): lint, then the tests not marked slow
test-fast: lint
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/verifier.py

clean:
	rm -rf runs build *.egg-info
