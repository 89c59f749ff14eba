# The README's two commands: `make repro` and `make test`. Both create .venv if it is missing
# and install the package with the versions pinned in requirements.lock.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock

.PHONY: repro test unit gate report bench lock clean-venv

# The package and what the pipeline needs.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $(STAMP)

# Tests also need pytest and torch (CPU build 2.13.0, for the reference tests): extras dev, bench.
$(TEST_STAMP): $(STAMP)
	$(PIP) -e ".[dev,bench]"
	touch $(TEST_STAMP)

# params.yaml is checked first: a bad value stops here, before DVC removes any stage's outputs.
repro: $(STAMP)
	$(BIN)/lstm-jax check-params params.yaml
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The test suite, then the metrics gate.
test: unit gate

unit: $(TEST_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Rerun every stage from scratch (--force: DVC would otherwise skip stages whose committed
# metrics files already match dvc.lock) and gate the fresh metrics on thresholds.yaml and on the
# committed values.
gate: $(STAMP)
	$(BIN)/lstm-jax check-params params.yaml
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro --force
	$(BIN)/lstm-jax check-metrics --baseline HEAD

# report.html: the figures, the alphabet table and the metrics, linking DVC's interactive plots.
report: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc plots show -o report_files/dvc_plots
	$(BIN)/lstm-jax report --out report.html --dvc-plots report_files/dvc_plots/index.html

# Speed side by side with flax and torch (CPU; cuDNN too on a GPU machine): see BENCHMARKS.md.
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/lstm_speed.py

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock:
	$(BIN)/python -m pip freeze --exclude-editable --exclude lstm-jax | grep -v '^-e' > requirements.lock

clean-venv:
	rm -rf $(VENV)
