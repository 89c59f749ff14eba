"""Issue 30: the classical baselines' bits do not follow the CPU.

statsmodels' ETS and scikit-learn's logistic regression go through NumPy and SciPy, whose OpenBLAS
and SIMD loops pick kernels by CPUID; `lstm_pipeline.pinned` pins both before they load. Here
`baseline_bits.py` (ETS forecasts and class probabilities, hashed) runs in fresh processes:
- under an environment that asks for other kernels and threads, pinned: the same bits, while
  unpinned the same environment changes them (so the comparison can fail: remove the pins and
  the first test fails on any machine);
- as if on another CPU (tools/cpuid_probe.py: AVX-512 hidden, other cache sizes): the same bits.
The stages' own outputs are checked the same way by `make gate`, which reruns every stage under
the probe and compares with the committed bits.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_jax import portability
from lstm_pipeline import pinned

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("baseline_bits.py")
# What another machine or user may have set: other OpenBLAS kernels (AVX without FMA), two
# BLAS threads, NumPy's full dispatch.
HOSTILE = {"OPENBLAS_CORETYPE": "Sandybridge", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}

pytestmark = pytest.mark.skipif(not pinned.numeric_pins_wanted(), reason="the pins apply to x86-64 with AVX2 and FMA")


def bits(*, unpinned=False, env_extra=None, probe=None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in (*pinned.NUMERIC_PINNED_ENV, pinned.PORTABLE_ENV)}
    env.update(env_extra or {})
    command = [sys.executable, str(SCRIPT), *(["--unpinned"] if unpinned else [])]
    if probe is not None:
        command = [sys.executable, str(ROOT / "tools/cpuid_probe.py"), *probe, "--", *command]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def reference() -> str:
    return bits()


def test_pins_override_what_the_environment_asks_for(reference):
    assert bits(env_extra=HOSTILE) == reference


def test_without_the_pins_the_environment_changes_the_bits(reference):
    """The test above can fail: the same environment, unpinned, gives other bits."""
    assert bits(unpinned=True, env_extra=HOSTILE) != reference


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("objdump")), reason="the probe needs gcc and objdump")
def test_baseline_bits_do_not_follow_cpuid(reference):
    """As if on an AVX2-only CPU with a 32 KiB L1d and 512 KiB L2: the same bits. Unpinned, an
    AVX-512 CPU's own bits differ from the AVX2-only one's (what issue 30 found)."""
    other_cpu = ["--no-avx512", "--l1d", "32", "--l2", "512"]
    assert bits(probe=other_cpu) == reference
    if "avx512f" in portability.cpu_flags():
        assert bits(unpinned=True) != bits(unpinned=True, probe=other_cpu)


def test_numpy_loaded_first_is_refused():
    code = "import numpy; import lstm_pipeline.pinned as p; p.check_pinned()"
    env = {k: v for k, v in os.environ.items() if k not in pinned.NUMERIC_PINNED_ENV}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "numpy: loaded before lstm_pipeline.pinned" in proc.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "stages").glob("*.py")))
def test_every_stage_imports_the_pins_first(script):
    tree = ast.parse((ROOT / "stages" / script).read_text())
    first = next(node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))
    assert isinstance(first, ast.Import) and first.names[0].name == "lstm_pipeline.pinned", script


def test_a_stage_script_that_loads_numpy_first_is_rerun_pinned(tmp_path):
    """A user's stage script that imports NumPy before the pipeline: `run_stage` runs it again,
    pinned (one exec, same arguments), instead of computing with the CPU's own kernels."""
    script, out = tmp_path / "numpy_first.py", tmp_path / "cores.txt"
    script.write_text(
        "import numpy\n"
        "from pathlib import Path\n"
        "from lstm_pipeline.stage import run_stage\n\n"
        "def arguments(parser):\n"
        "    parser.add_argument('--out', type=Path, required=True)\n\n"
        "def main(params, args):\n"
        "    from threadpoolctl import threadpool_info\n"
        "    args.out.write_text(','.join(sorted({p['architecture'] for p in threadpool_info()})))\n\n"
        "run_stage(main, 'NumPy first', arguments)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (*pinned.NUMERIC_PINNED_ENV, pinned.REEXEC_ENV)}
    env["OPENBLAS_CORETYPE"] = HOSTILE["OPENBLAS_CORETYPE"]
    argv = [sys.executable, str(script), "--params", str(ROOT / "params.yaml"), "--out", str(out)]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_text() == pinned.BLAS_CORE
