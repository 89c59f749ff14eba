# The README's two commands: `make repro` and `make test`. Both create .venv if it is missing
# and install the package with the versions pinned in requirements.lock.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: repro test lock clean-venv

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev]"
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock:
	$(BIN)/python -m pip freeze --exclude-editable --exclude lstm-jax | grep -v '^-e' > requirements.lock

clean-venv:
	rm -rf $(VENV)
