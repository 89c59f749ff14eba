"""Run a command as if on a CPU with other cache sizes, or without AVX-512: the check that the
pinned pipeline's bits do not depend on what CPUID says (lstm_jax.portability).

jaxlib's native code (XLA, Eigen, oneDNN), NumPy's SIMD dispatch and the OpenBLAS inside the
NumPy and SciPy wheels (under the baselines) read the CPU's features and cache sizes with the
CPUID instruction, which a user process cannot intercept. So the probe copies those packages once
into --workdir, replaces each CPUID in their native libraries by an illegal instruction (sites
found with `objdump -d`), and runs the command with the copies first on PYTHONPATH and
`fake_cpuid.c` preloaded: it answers those sites with the real CPUID, edited. Needs gcc and
objdump (binutils).

    python tools/cpuid_probe.py --l1d 32 --l2 512 --no-avx512 -- dvc repro --force
    lstm-pipeline check-reproduced --baseline HEAD

Cache sizes are powers of two in KiB. --no-avx512 hides AVX-512 from jaxlib and also sets
LSTM_JAX_NATIVE_ISA=avx2, since the native kernels read CPUID through libgcc, which is not patched.

The first call takes about a minute (copy and disassembly); later calls reuse --workdir.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPUID, UD2 = b"\x0f\xa2", b"\x0f\x0b"
# package -> the glob patterns (in the package's folder and its wheel's `<package>.libs` folder)
# of the native libraries that read CPUID for what decides a result's bits.
PATCHED = {
    "jaxlib": ["libjax_common.so"],  # XLA and its kernels (jaxlib 0.10's one native library)
    "numpy": ["_core/_multiarray_umath.*.so", "libscipy_openblas64_*.so"],  # SIMD dispatch, OpenBLAS
    "scipy": ["libscipy_openblas-*.so"],  # SciPy's own OpenBLAS (optimizers, linalg)
}


def fail(message: str) -> None:
    print(f"cpuid_probe: {message}", file=sys.stderr)
    sys.exit(2)


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        fail(f"{package}: expected an installed package, found none (run `make install`)")
    return Path(list(spec.submodule_search_locations)[0])


def patch(library: Path) -> list[str]:
    """Replace each CPUID in `library` by UD2; the "<file name> <offset>" lines of its sites."""
    sites = cpuid_sites(library)
    vaddr, offset = text_section(library)
    with open(library, "r+b") as f:
        for site in sites:
            f.seek(site - vaddr + offset)
            if f.read(2) != CPUID:
                fail(f"{library}: expected CPUID at {site:#x}, found other bytes")
            f.seek(site - vaddr + offset)
            f.write(UD2)
    return [f"{library.name} {s:x}\n" for s in sites]


def text_section(library: Path) -> tuple[int, int]:
    """(virtual address, file offset) of the library's .text section."""
    out = subprocess.run(["objdump", "-h", str(library)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == ".text":
            return int(parts[3], 16), int(parts[5], 16)
    fail(f"{library}: expected a .text section, found none")


def cpuid_sites(library: Path) -> list[int]:
    """Virtual addresses of the CPUID instructions in the library's code."""
    dump = subprocess.Popen(["objdump", "-d", "--no-show-raw-insn", str(library)], stdout=subprocess.PIPE, text=True)
    sites = [int(m.group(1), 16) for line in dump.stdout if (m := re.match(r"\s*([0-9a-f]+):\s+cpuid\s*$", line))]
    if dump.wait() != 0 or not sites:
        fail(f"{library}: objdump found no CPUID instruction")
    return sites


def prepare(workdir: Path) -> tuple[Path, Path, Path]:
    """The patched packages' parent folder, its sites file and the preload library."""
    for tool in ("gcc", "objdump"):
        if shutil.which(tool) is None:
            fail(f"{tool}: expected on PATH, found none")
    sources = {package: package_dir(package) for package in PATCHED}
    stamp = "".join(f"{source} {source.stat().st_mtime_ns}\n" for source in sources.values())
    site_path, preload = workdir / "cpuid_sites.txt", workdir / "fake_cpuid.so"
    fresh = (workdir / "stamp").is_file() and (workdir / "stamp").read_text() == stamp and site_path.is_file()
    if not fresh:
        workdir.mkdir(parents=True, exist_ok=True)
        lines = []
        for package, source in sources.items():
            for folder in (source, source.parent / f"{package}.libs"):
                if not folder.is_dir():
                    continue
                shutil.rmtree(workdir / folder.name, ignore_errors=True)
                shutil.copytree(folder, workdir / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
            libraries = [lib for pattern in PATCHED[package] for lib in sorted(workdir.glob(f"{package}*/{pattern}"))]
            if len(libraries) < len(PATCHED[package]):
                fail(f"{package}: expected libraries matching {PATCHED[package]}, found {libraries}")
            for library in libraries:
                lines += patch(library)
        site_path.write_text("".join(lines))
        (workdir / "stamp").write_text(stamp)
        print(f"cpuid_probe: patched {len(lines)} CPUID sites in copies of {', '.join(PATCHED)}", file=sys.stderr)
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(preload), str(HERE / "fake_cpuid.c"), "-ldl"], check=True
    )
    return workdir, site_path, preload


def kib(text: str) -> int:
    """A cache size in KiB: a power of two, so that ways x line x sets can make it exactly."""
    if not text.isdigit() or int(text) < 1 or int(text) & (int(text) - 1):
        raise argparse.ArgumentTypeError(f"expected a power of two (KiB), found {text!r}")
    return int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--l1d", type=kib, help="L1 data cache to report, KiB (default: the real one)")
    parser.add_argument("--l2", type=kib, help="L2 cache to report, KiB (default: the real one)")
    parser.add_argument("--l3", type=kib, help="L3 cache to report, KiB, at least 512 (default: the real one)")
    parser.add_argument("--no-avx512", action="store_true", help="hide AVX-512 from CPUID")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache/lstm_jax_cpuid_probe")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("command: expected one after --, found none")
    if args.l3 is not None and args.l3 < 512:
        parser.error(f"--l3: expected at least 512 (CPUID counts L3 in 512 KiB units), found {args.l3}")
    parent, site_path, preload = prepare(args.workdir.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}  # none from an earlier probe
    env.update(FAKE_CPUID_SITES=str(site_path), FAKE_CPUID_REPORT="1")
    env["LD_PRELOAD"] = " ".join(filter(None, [str(preload), os.environ.get("LD_PRELOAD", "")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(parent), os.environ.get("PYTHONPATH", "")]))
    # A compilation cache filled under the real CPUID would skip the compiler that reads the fake one.
    env["LSTM_JAX_COMPILATION_CACHE"] = "off"
    for name, value in (("FAKE_L1D_KIB", args.l1d), ("FAKE_L2_KIB", args.l2), ("FAKE_L3_KIB", args.l3)):
        if value is not None:
            env[name] = str(value)
    if args.no_avx512:
        env["FAKE_NO_AVX512"] = "1"
        env["LSTM_JAX_NATIVE_ISA"] = "avx2"
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
