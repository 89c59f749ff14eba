"""Shared by the pipeline tests: one compilation cache for every stage they start."""

import atexit
import os
import shutil
import tempfile

from lstm_pipeline.runtime import CACHE_ENV

# Each test runs its stages in a temporary repo, whose own .jax_cache would start cold: with one
# cache for the whole session, a program compiled by one repo's stage is not compiled again by
# the next. Cached programs are the same programs (test_portability checks cold against warm
# bit for bit); tests that need their own cache set the variable themselves.
if CACHE_ENV not in os.environ:
    _cache = tempfile.mkdtemp(prefix="lstm-jax-test-cache-")
    os.environ[CACHE_ENV] = _cache
    atexit.register(shutil.rmtree, _cache, True)

# The stages run at XLA's default optimisation level, as users run them (some outputs are
# compared bit for bit across two programs, e.g. reload's predictions): drop the level the
# library tests' conftest sets when both folders run in one pytest process.
_LIB_LEVEL = "--xla_backend_optimization_level=0"
if _LIB_LEVEL in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace(_LIB_LEVEL, "").strip()
