"""lstm_jax.training.keep_freed_memory: a block freed by one step is reused by the next without
faulting its pages in again, also from a thread other than the main one (XLA's and torch's
work runs on pool threads). Each case runs in a fresh process: the settings are process-wide."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_jax.training import _memory as memory

BLOCK_MB = 96  # more than a thread arena's 64 MiB heap (XLA's temporaries at config (c): 57 MB)
PAGES = BLOCK_MB * 256  # 4 KiB pages

# malloc through ctypes, not numpy: numpy asks for huge pages on large arrays (madvise), which
# XLA's and torch's allocations do not.
SCRIPT = f"""
import ctypes, json, resource, sys, threading
from lstm_jax.training import _memory as memory
kept = memory.keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def steps():  # three "steps", each allocating, writing and freeing one block
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc({BLOCK_MB} << 20)
        libc.memset(block, 1, {BLOCK_MB} << 20)
        libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=steps)
worker.start()
worker.join()
print(json.dumps({{"kept": kept, "faults": faults}}))
"""


def run(mode: str, env_value: str | None = None) -> dict:
    env = {**os.environ, memory.KEEP_ENV: env_value} if env_value is not None else None
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def thp_always() -> bool:
    """With transparent huge pages always on, fresh memory faults once per 2 MiB, not per page."""
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.is_file() and "[always]" in path.read_text()


needs_glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc's mallopt only")


@needs_glibc
def test_a_freed_block_is_reused_without_page_faults():
    res = run("keep")
    assert res["kept"] is True
    assert res["faults"][0] > PAGES // 2  # the first step faults its pages in (the test can see faults)
    assert max(res["faults"][1:]) < PAGES // 100, res  # the next steps reuse them


@needs_glibc
@pytest.mark.skipif(thp_always(), reason="huge pages fault once per 2 MiB either way")
def test_without_it_every_step_faults_its_pages_in_again():
    res = run("default")
    assert min(res["faults"]) > PAGES // 2, res


@needs_glibc
def test_the_environment_turns_it_off():
    res = run("keep", env_value="0")
    assert res["kept"] is False
    if not thp_always():
        assert min(res["faults"]) > PAGES // 2, res
