"""Where a run's numbers go besides the study and ``metrics.jsonl``: TensorBoard and Weights & Biases.

TensorBoard (``torch.utils.tensorboard``, needs the ``tensorboard`` package: ``pip install
'wfsearch[tensorboard]'``) writes ``OUTPUT/tensorboard/``. A training run (`wfsearch train`) logs
``train/loss``, ``train/lr`` and ``train/images_per_s`` every logged step, and each epoch's metrics line
under ``epoch/`` at the epoch's last step; a search (`wfsearch run --tensorboard`) logs every finished
trial's objectives under ``trial/`` and the search's progress (``search/hypervolume``, front size, best
of each objective) at the count of distinct architectures finished. W&B (``pip install wandb``) logs the
same when asked for. Both run on the main process (the driver) only.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wfsearch.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["RunTrackers"]

SKIP = ("epoch", "step", "world_size", "global_batch")  # the metrics-line fields that are not curves


class RunTrackers:
    """TensorBoard (when installed, unless ``tensorboard=False``) and W&B (when ``wandb=True``) for one run."""

    def __init__(self, output: Path, run_name: str, config: dict[str, Any], *, tensorboard: bool = True,
                 wandb: bool = False, resume: bool = False, first_step: int = 0):
        """``first_step``: the first step this session logs; on resume, TensorBoard hides what an interrupted
        session logged from there on (it is logged again), so no step shows twice."""
        self.writer = None
        self.wandb_run = None
        if wandb:
            try:
                import wandb as wandb_lib
            except ImportError:
                raise UserError("--wandb: the wandb package is not installed; pip install 'wfsearch[wandb]' "
                                "(and `wandb login`), or drop --wandb") from None
            self.wandb_run = wandb_lib.init(project="wfsearch", name=run_name, config=config, dir=str(output),
                                            id=_wandb_id(output, resume), resume="allow")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("TensorBoard logging is off: the tensorboard package is not installed "
                            "(pip install 'wfsearch[tensorboard]'); metrics.jsonl has every epoch")
            else:
                self.writer = SummaryWriter(log_dir=str(output / "tensorboard"),
                                            purge_step=first_step if resume else None)

    @property
    def active(self) -> bool:
        return self.writer is not None or self.wandb_run is not None

    def log(self, values: dict[str, float], step: int) -> None:
        """Scalars by name at ``step``."""
        self._log({k: float(v) for k, v in values.items()}, step)

    def step(self, info: dict[str, Any]) -> None:
        """A logged optimizer step: ``{"step", "loss", "lr", "images_per_s", ...}``."""
        values = {f"train/{k}": float(info[k]) for k in ("loss", "lr", "images_per_s") if k in info}
        self._log(values, int(info["step"]))

    def epoch(self, row: dict[str, Any]) -> None:
        """An epoch's metrics line (as written to ``metrics.jsonl``)."""
        values = {f"epoch/{k}": float(v) for k, v in row.items()
                  if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._log(values, int(row["step"]))

    def _log(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        if self.wandb_run is not None:
            self.wandb_run.log(values, step=step)  # W&B drops steps below its run's last one

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def _wandb_id(output: Path, resume: bool) -> str:
    """One W&B run per run folder: the id is kept in ``OUTPUT/wandb_id`` so a resumed run continues it."""
    path = output / "wandb_id"
    if resume and path.is_file():
        return path.read_text().strip()
    import uuid

    run_id = uuid.uuid4().hex[:12]
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id
