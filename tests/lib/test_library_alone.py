"""The library stands alone: importable and trainable with jax, flax, optax and numpy only,
and nothing in it imports the pipeline."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "lstm_jax"

# Run in a fresh interpreter where the pipeline's packages cannot be imported at all, as in an
# environment that installed only `lstm-jax` (flax itself brings pyyaml and rich).
SCRIPT = textwrap.dedent("""
    import sys

    BLOCKED = {"dvc", "dvclive", "matplotlib", "tqdm", "lstm_pipeline", "torch", "keras", "pandas"}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: not a library dependency)")

    sys.meta_path.insert(0, Block())
    import flax.linen  # noqa: F401  (what flax imports is not ours to answer for)

    before = set(sys.modules)
    import jax, numpy as np
    import lstm_jax
    from lstm_jax.io._datasets import build_windows, count_steps
    from lstm_jax.training import train_model

    new = {m.split(".")[0] for m in set(sys.modules) - before}
    assert not new & {"yaml", "dvc", "matplotlib", "tqdm", "lstm_pipeline"}, new
    ds = build_windows("abcabcabd " * 20, seq_length=6, stride=2, heldout_fraction=0.2)
    model = lstm_jax.CharLM(vocab_size=len(ds.vocab), embed_dim=4, hidden_size=8)
    tx = lstm_jax.make_optimizer(0.01, count_steps(len(ds.train), 8, 2), clip_norm=1.0)
    result = train_model(model, lstm_jax.init_params(model, jax.random.key(0)), ds.train, ds.heldout, tx=tx,
                         epochs=2, batch_size=8, eval_batch_size=16, key=jax.random.key(1))
    assert isinstance(result, lstm_jax.TrainResult) and len(result.history) == 2
    lstm_jax.save_checkpoint(sys.argv[1], model=model, params=result.state.params, vocab=ds.vocab)
    ckpt = lstm_jax.load_checkpoint(sys.argv[1])
    a = model.apply({"params": result.state.params}, ds.heldout[:, :-1])[0]
    b = ckpt.model.apply({"params": ckpt.params}, ds.heldout[:, :-1])[0]
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    print("ok", result.final["heldout_loss"])
""")


def test_import_and_train_with_the_library_dependencies_only(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ckpt")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok")


def _imports(path: Path) -> set[str]:
    """Top-level package names imported anywhere in a module (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_in_the_library_imports_the_pipeline_or_its_tools():
    allowed = {
        "__future__",
        "argparse",
        "csv",
        "dataclasses",
        "functools",
        "hashlib",
        "io",
        "json",
        "logging",
        "math",
        "os",
        "shutil",
        "stat",  # safe_paths: regular files only
        "fcntl",  # folder_lock: one writer per checkpoint folder
        "collections",
        "pydoc_data",  # corpus: the documentation text that ships with Python
        "torch",  # torch_import.to_torch only, imported inside it (an optional extra)
        "keras",  # keras_convert.from_keras/to_keras only, imported inside them (a test-only extra)
        "sys",
        "tempfile",
        "time",
        "typing",
        "pathlib",
        "itertools",
        "jax",
        "flax",
        "optax",
        "numpy",
        "lstm_jax",
        "tqdm",
        "platform",  # portability: the machine a run was on (standard library)
        "shlex",  # portability: XLA_FLAGS as XLA splits them
        "importlib",  # portability: installed versions (importlib.metadata)
        "ctypes",  # native: loads the C++ kernels (standard library)
        "warnings",  # native: falls back to fused with a warning (standard library)
    }  # tqdm: optional, inside a try
    paths = sorted(LIBRARY.rglob("*.py"))
    assert len(paths) > 30  # every module, in the subpackages too
    for path in paths:
        extra = _imports(path) - allowed
        assert not extra, f"{path.relative_to(LIBRARY)} imports {sorted(extra)}"
    assert "tqdm" in _imports(LIBRARY / "training/_fit.py")  # and only there, lazily:
    tree = ast.parse((LIBRARY / "training/_fit.py").read_text("utf-8"))
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and "tqdm" in ast.dump(n) for n in tree.body)
