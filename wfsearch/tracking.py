"""TensorBoard (``OUTPUT/tensorboard/``) and Weights & Biases logging of a training run (``train/``, ``epoch/``)
or a search (``trial/``, ``search/``), besides the study and ``metrics.jsonl``; on the driver only."""
from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from wfsearch.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["RunTrackers"]

SKIP = ("epoch", "step", "world_size", "global_batch")  # the metrics-line fields that are not curves


class RunTrackers:
    """TensorBoard (when installed, unless ``tensorboard=False``) and W&B (when ``wandb=True``) for one run.

    ``first_step``: the first step this session logs; on resume TensorBoard hides what an interrupted session
    logged from there on (it is logged again), so no step shows twice."""

    def __init__(self, output: Path, run_name: str, config: dict[str, Any], *, tensorboard: bool = True,
                 wandb: bool = False, resume: bool = False, first_step: int = 0):
        self.writer = self.wandb_run = None
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

    def log(self, values: dict[str, float], step: int) -> None:
        """Scalars by name at ``step``."""
        values = {k: float(v) for k, v in values.items()}
        for k, v in values.items() if self.writer is not None else ():
            self.writer.add_scalar(k, v, step)
        if self.wandb_run is not None:
            self.wandb_run.log(values, step=step)  # W&B drops steps below its run's last one

    def step(self, info: dict[str, Any]) -> None:
        """A logged optimizer step: ``{"step", "loss", "lr", "images_per_s", ...}``."""
        self.log({f"train/{k}": info[k] for k in ("loss", "lr", "images_per_s") if k in info}, int(info["step"]))

    def epoch(self, row: dict[str, Any]) -> None:
        """An epoch's metrics line (as written to ``metrics.jsonl``)."""
        self.log({f"epoch/{k}": v for k, v in row.items()
                  if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)}, int(row["step"]))

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
    run_id = uuid.uuid4().hex[:12]
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id
