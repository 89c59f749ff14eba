"""Resumable training: periodic checkpoints of one run, and the fingerprint that says whose they are.

A run's checkpoints live in `folder/step_XXXXXXXX/`, each a `lstm_jax.io` folder whose
metadata holds the data position and the fingerprint of the run's params, data and training code.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp

from lstm_jax.io._checkpoint import read_config, digest, restore_tree, save_checkpoint
from lstm_jax.errors import CheckpointError
from lstm_jax.io._folder_lock import lock_folder, unlock_folder
from lstm_jax.training._metrics import MetricSums
from lstm_jax.io._outputs import write_json

BEST_PARAMS = "best_params.msgpack"  # a training checkpoint's best epoch so far (early stopping)
log = logging.getLogger(__name__)


class TrainCheckpointer:
    """Periodic checkpoints of one training run in `folder/step_XXXXXXXX/`.

    Each step folder is written beside its final name and renamed into place, so it is either
    complete or absent; leftovers of a save that was killed (hidden `.step_*.tmp` folders) are
    ignored by `restore` and removed by the next `save`. The newest `keep` checkpoints are kept.
    Checkpoints whose fingerprint (the given `fingerprint` of the run's params and data, plus
    the lstm_jax source code) differs are from another run: `restore` ignores them and the next
    `save` deletes them.

    One process at a time: the first `latest`, `restore` or `save` takes the folder's lock
    (`lstm_jax.io`) until `finish`, so a second run in the same folder (an orphan of
    a killed `dvc repro`, a second `dvc repro`) fails with a CheckpointError instead of
    deleting or replacing the first one's checkpoints.
    """

    def __init__(self, folder, *, every: int, fingerprint: str, model, vocab, optimizer: dict, keep: int = 2):
        self.folder, self.every, self.keep = Path(folder), every, keep
        self.run_fingerprint = fingerprint
        self.fingerprint = digest(fingerprint, code_fingerprint())
        self.model, self.vocab, self.optimizer = model, vocab, optimizer

    def _steps(self) -> list[Path]:
        lock_folder(self.folder)
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and p.name.startswith("step_"))

    def _ours(self, path: Path) -> bool:
        try:
            return read_config(path)["metadata"].get("fingerprint") == self.fingerprint
        except (CheckpointError, AttributeError):
            return False

    def latest(self) -> Path | None:
        """The newest complete checkpoint of this run, or None."""
        ours = self._candidates()
        return ours[0] if ours else None

    def _candidates(self) -> list[Path]:
        return [p for p in reversed(self._steps()) if self._ours(p)]

    def save(self, state, progress: dict, best_params=None) -> None:
        """Save a TrainState and the data position {"epoch", "batch", "sums", "history", "key"}
        (plus "best" {"epoch", "heldout_loss"} with `best_params`, the best epoch's weights, when
        training keeps the best epoch)."""
        lock_folder(self.folder)
        meta = {
            "fingerprint": self.fingerprint,
            "step": int(state.step),
            "progress": {**progress, "sums": {k: float(v) for k, v in progress["sums"]._asdict().items()}},
        }
        save_checkpoint(
            self.folder / f"step_{int(state.step):08d}",
            model=self.model,
            params=state.params,
            vocab=self.vocab,
            opt_state=state.opt_state,
            optimizer=self.optimizer,
            metadata=meta,
            extra_trees=None if best_params is None else {BEST_PARAMS: best_params},
        )
        for leftover in self.folder.glob(".*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        steps = self._steps()
        stale = [p for p in steps if not self._ours(p)] + [p for p in steps if self._ours(p)][: -self.keep]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)

    def restore(self, state):
        """(state, progress) from the newest loadable checkpoint of this run, or None.

        `state` is a fresh TrainState whose shapes the checkpoint must fit exactly. A checkpoint
        that fails to load (e.g. truncated by a crash of the machine) is reported and the one
        before it is tried; if none loads, the last error is raised.
        """
        error = None
        for path in self._candidates():
            try:
                return self._restore(path, state)
            except CheckpointError as exc:
                log.warning("skipping unusable checkpoint: %s", exc)
                error = exc
        if error is not None:
            raise error
        return None

    def _restore(self, path: Path, state):
        config = read_config(path)
        params = restore_tree(path / "params.msgpack", jax.eval_shape(lambda: state.params), config)
        if not (path / "opt_state.msgpack").is_file():
            raise CheckpointError(f"{path}: no optimizer state (opt_state.msgpack), which resuming training needs")
        opt_state = restore_tree(path / "opt_state.msgpack", jax.eval_shape(lambda: state.opt_state), config)
        try:
            meta = config["metadata"]
            progress, step = dict(meta["progress"]), int(meta["step"])
            progress["sums"] = MetricSums(**progress["sums"]).to_numpy()
            missing = {"epoch", "batch", "history", "key"} - set(progress)
            if missing:
                raise KeyError(sorted(missing))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path / 'config.json'}: missing or malformed training progress ({exc})") from None
        if (path / BEST_PARAMS).is_file():
            progress["best_params"] = restore_tree(path / BEST_PARAMS, jax.eval_shape(lambda: state.params), config)
        return state.replace(step=jnp.int32(step), params=params, opt_state=opt_state), progress

    def finish(self) -> None:
        """After a completed run: drop the step checkpoints, so a forced rerun starts from scratch.

        A small `finished.json` stays, so the (persisted) folder exists for DVC. It records the
        run's fingerprint without the code's: the folder DVC tracks then changes only with what was
        computed, not with an edit to a docstring of the library (whose step checkpoints, with the
        code's fingerprint, are gone by then).
        """
        for path in self._steps():
            shutil.rmtree(path, ignore_errors=True)
        write_json(self.folder / "finished.json", {"fingerprint": self.run_fingerprint})
        unlock_folder(self.folder)


# The library modules whose code decides what training computes (tests/lib/test_checkpoint.py
# checks that this covers every module the epoch loop, the train step and the models import),
# as paths under lstm_jax/.
TRAINING_CODE = (
    "errors.py",
    "io/_checkpoint.py",
    "io/_datasets.py",
    "io/_folder_lock.py",
    "io/_outputs.py",
    "io/_safe_paths.py",
    "io/_vocab.py",
    "limits.py",
    "nn/_forecaster.py",
    "nn/_gru.py",
    "nn/_initializers.py",
    "nn/_layers.py",
    "nn/_models.py",
    "portability.py",
    "recurrence/_fused.py",
    "recurrence/_fused_gru.py",
    "recurrence/_native.py",
    "recurrence/_native_lstm.cc",
    "recurrence/_scan.py",
    "training/_evaluation.py",
    "training/_fit.py",
    "training/_forecast.py",
    "training/_metrics.py",
    "training/_resume.py",
    "training/_step.py",
    "training/_timing.py",
)


def code_fingerprint() -> str:
    """Hash of the library code that computes training: checkpoints of other code are not resumed.

    Code outside it (the command line, generation, the pipeline's report or plots) can change
    without voiding a resumable checkpoint.
    """
    folder = Path(__file__).parents[1]  # lstm_jax/
    return digest(*[name + (folder / name).read_text("utf-8") for name in TRAINING_CODE])
