"""Per-epoch metrics through DVCLive, for `dvc exp show` (the last epoch's values and `step`) and
`dvc plots` (the curves, redrawn while `dvc exp run` is going).

    with epoch_log("dvclive/train") as on_epoch:
        train_model(..., on_epoch=on_epoch)

writes `dvclive/train/metrics.json` (the last row and its step) and one
`dvclive/train/plots/metrics/<name>.tsv` per metric (columns step, <name>). The step is the row's
epoch (1, 2, ...). The folder is emptied when the run starts and `fit` replays the rows restored
from a resumed checkpoint first, so it always holds the whole run. No timestamps, report, system
monitoring or dvc.yaml edits: the files depend on the rows alone, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def epoch_log(folder: str | Path) -> Iterator[Callable[[dict], None]]:
    """Yield an `on_epoch(row)` callback logging each history row (a dict with `epoch` and float
    metrics) as one DVCLive step; the summary is written once more when the block ends normally."""
    from dvclive import Live  # imports DVC: only the stages that log pay for it

    live = Live(dir=str(folder), report=None, save_dvc_exp=False, dvcyaml=None, monitor_system=False)

    def on_epoch(row: dict) -> None:
        live.step = int(row["epoch"])
        for name in sorted(k for k in row if k != "epoch"):  # a fixed order, however the row was restored
            live.log_metric(name, row[name], timestamp=False)
        live.next_step()

    yield on_epoch
    live.end()
