# The README's two commands: `make repro` and `make test`. Both create $(VENV) if it is missing,
# from nothing but Python 3.11, and install exactly the versions pinned, with their hashes, in
#   requirements/pipeline.lock  the library and its `pipeline` and `realdata` extras: what `make repro` needs
#   requirements/test.lock      the same versions plus the `dev` and `bench` extras (pytest, ruff,
#                               torch 2.13.0+cpu for the reference tests): what `make test` needs
# Each lock is installed with --require-hashes --no-deps (nothing is resolved at install time, and
# a file whose hash differs is refused), then the project itself, editable and without a hash.
# One stamp per lock: a venv is reinstalled only when its lock (or pyproject.toml) changes.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIPELINE_STAMP := $(VENV)/.installed-pipeline
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip --disable-pip-version-check
INSTALL := $(PIP) install --quiet
# Commands that call dvc, lstm-jax or lstm-pipeline (directly or from a test) find the venv's.
RUN := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: repro test lint test-lib test-pipeline unit gate report bench install install-pipeline \
	lock clean-venv
# The targets share the workspace (gate reruns every stage): never run two at once, even with -j.
.NOTPARALLEL:

# The locks are made for CPython 3.11 (binary wheels by hash): refuse any other interpreter.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "$(PYTHON) is not Python 3.11; pick one with: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# The library and what the pipeline needs; then the project itself (editable, no dependencies),
# which also compiles the C++ kernels of implementation="native" (setup.py) against the FFI
# headers of the jaxlib just installed (hence no build isolation; without a compiler the install
# goes on without them).
$(PIPELINE_STAMP): requirements/pipeline.lock pyproject.toml setup.py lstm_jax/recurrence/_native_lstm.cc | $(BIN)/python
	$(INSTALL) --require-hashes --no-deps -r requirements/pipeline.lock
	$(INSTALL) --no-deps --no-build-isolation -e .
	touch $@

# Tests also need pytest, ruff and torch (CPU build 2.13.0+cpu, from the machine's local wheel
# folder, for the reference tests and the benchmark). Same versions as pipeline.lock for the rest.
$(TEST_STAMP): requirements/test.lock $(PIPELINE_STAMP)
	$(INSTALL) --require-hashes --no-deps -r requirements/test.lock
	touch $@

# Just the installs (e.g. `make install VENV=/tmp/somewhere` to try the locks in a fresh venv).
install-pipeline: $(PIPELINE_STAMP)
install: $(TEST_STAMP)

# params.yaml is checked first: a bad value stops here, before DVC removes any stage's outputs.
repro: $(PIPELINE_STAMP)
	$(BIN)/lstm-pipeline check-params params.yaml
	$(RUN) $(BIN)/dvc repro

# Lint, the library's tests (fast, no DVC), the pipeline's tests, then the metrics gate.
test: lint test-lib test-pipeline gate

# ruff's lint rules and formatting, configured in pyproject.toml (`ruff format` fixes the latter).
lint: $(TEST_STAMP)
	$(BIN)/ruff check lstm_jax lstm_pipeline stages tests benchmarks tools
	$(BIN)/ruff format --check lstm_jax lstm_pipeline stages tests benchmarks tools

# The library's tests, and the examples in its docstrings (doctests).
test-lib: $(TEST_STAMP)
	$(RUN) $(BIN)/python -m pytest tests/lib
	$(RUN) $(BIN)/python -m pytest --doctest-modules lstm_jax -p no:cacheprovider

test-pipeline: $(TEST_STAMP)
	$(RUN) $(BIN)/python -m pytest tests/pipeline

# Both test suites, without lint or the gate.
unit: test-lib test-pipeline

# Rerun every stage from scratch (--force: DVC would otherwise skip stages whose committed
# metrics files already match dvc.lock) and gate the fresh metrics on thresholds.yaml and on the
# committed values; then, under the portability pins (any x86-64 CPU with AVX2 and FMA), require
# every output to be the committed bits (dvc.lock's hashes unchanged).
# The rerun runs as if on another CPU: tools/cpuid_probe.py answers the CPUID of jaxlib, NumPy and
# the OpenBLAS in NumPy's and SciPy's wheels with AVX-512 hidden and a 32 KiB L1d / 512 KiB L2, so
# every CI run checks that the committed bits do not follow the CPU that made them (needs gcc and
# objdump; the first use copies those packages to ~/.cache, about a minute). On the real CPU
# instead: `make gate GATE_CPU=`.
GATE_CPU ?= $(BIN)/python tools/cpuid_probe.py --no-avx512 --l1d 32 --l2 512 --
gate: $(PIPELINE_STAMP)
	$(BIN)/lstm-pipeline check-params params.yaml
	$(RUN) $(GATE_CPU) $(BIN)/dvc repro --force
	$(BIN)/lstm-pipeline check-metrics --baseline HEAD
	$(BIN)/lstm-pipeline check-reproduced --baseline HEAD

# report.html: the figures, the alphabet table and the metrics, linking DVC's interactive plots.
report: $(PIPELINE_STAMP)
	$(BIN)/lstm-pipeline report --out report.html --dvc-plots report_files/dvc_plots/index.html

# Speed side by side with flax and torch (CPU; cuDNN too on a GPU machine), then the same step
# with as many jobs at once as cores, and a two-experiment `dvc queue` at -j 1 and -j 2: see
# BENCHMARKS.md.
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/lstm_speed.py
	$(RUN) $(BIN)/python benchmarks/contention.py

# Re-pin the locks from pyproject.toml with pip-tools, run from its own venv $(TOOLS_VENV) (never
# from $(VENV)). Existing pins are kept unless pyproject.toml needs otherwise; to move versions:
#   make lock LOCK_ARGS=--upgrade                    (everything)
#   make lock LOCK_ARGS="--upgrade-package dvc"      (one package)
# The exact commands (CUSTOM_COMPILE_COMMAND only sets the header line of the lock files):
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
#       --no-emit-find-links --extra pipeline --extra realdata --extra dev --extra bench \
#       -o requirements/test.lock pyproject.toml
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
#       --no-emit-find-links --extra pipeline --extra realdata --upgrade -c requirements/test.lock \
#       -o requirements/pipeline.lock pyproject.toml
# test.lock is compiled first; pipeline.lock is then constrained by it, so every version in
# pipeline.lock is the one in test.lock (checked by the last line). torch==2.13.0+cpu is found
# in the local wheel folder that pip's configuration names (find-links), never on PyPI (whose
# torch 2.13.0 is the CUDA build): the lock holds that wheel's hash only.
TOOLS_VENV ?= .venv-tools
PIP_TOOLS := pip-tools==7.6.2
LOCK_ARGS ?=
COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(TOOLS_VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

lock:
	test -x $(TOOLS_VENV)/bin/pip-compile || \
		{ $(PYTHON) -m venv $(TOOLS_VENV) && $(TOOLS_VENV)/bin/python -m pip install --quiet $(PIP_TOOLS); }
	$(COMPILE) $(LOCK_ARGS) --extra pipeline --extra realdata --extra dev --extra bench --extra native \
		-o requirements/test.lock pyproject.toml
	$(COMPILE) --extra pipeline --extra realdata --upgrade -c requirements/test.lock \
		-o requirements/pipeline.lock pyproject.toml
	grep -oE '^[^ #]+==[^ ]+' requirements/pipeline.lock | while read pin; do \
		grep -q "^$$pin " requirements/test.lock || { echo "$$pin: not in requirements/test.lock" >&2; exit 1; }; done

clean-venv:
	rm -rf $(VENV) $(TOOLS_VENV)
