# embedlab: `make train` trains the default config, `make test` runs the test suite.
# Both create (or reuse) .venv and install the package with the pinned, tested versions in
# constraints.txt (torch==2.13.0 resolves to the local CPU build on the dev machines).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev
STAMP := $(VENV)/.embedlab-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup train test test-slow test-all lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	@# replaced by our own sweeper (src/hydra_plugins); a stale copy would clash with its configs
	$(BIN)/python -m pip uninstall --quiet --yes hydra-optuna-sweeper 2>/dev/null || true
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install embedlab with its dev extras

train: $(STAMP)  ## train the default config (make train ARGS="embedding=xavier_uniform")
	$(BIN)/embedlab-train $(ARGS)

test: $(STAMP)  ## the default test suite (slow tests excluded)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)  ## only the slow tests (real-scale files, long runs)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

clean:
	rm -rf outputs .cache .pytest_cache .ruff_cache dist build
