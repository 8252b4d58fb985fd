"""Curve records as TensorBoard scalars (``train.tensorboard: true``).

The scalars of one :class:`~tgraph.runs.records.CurveRecord`, at step ``epoch`` (selection)
or ``refit_epoch`` (refit):

=====================  ======================================================
``train/loss``         mean batch loss of the epoch
``train/lr``           learning rate at the end of the epoch
``train/seconds``      training time of the epoch
``valid/<metric>``     validation metrics (validated epochs only)
``valid/seconds``      validation time
``refit/loss``,        the same for the epochs of the refit on train + valid
``refit/lr``,
``refit/seconds``
=====================  ======================================================

The folder is rewritten from the trainer's history whenever training starts, as the curve
file is: after a resume it holds each epoch once, as the curve does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tgraph.runs.records import CurveRecord


def scalars(record: CurveRecord) -> tuple[int, dict[str, float]]:
    """The step and the ``tag -> value`` scalars of ``record`` (module docstring)."""
    part = "refit" if record.refit else "train"
    step = record.refit_epoch if record.refit and record.refit_epoch is not None else record.epoch
    values = {f"{part}/loss": record.loss, f"{part}/lr": record.lr}
    values[f"{part}/seconds"] = record.train_s
    values.update({f"valid/{name}": value for name, value in record.valid.items()})
    values["valid/seconds"] = record.eval_s
    return step, {tag: float(v) for tag, v in values.items() if v is not None}


class TensorBoardCurve:
    """Writes curve records into the TensorBoard folder ``folder``, replacing what was there
    with ``history`` first."""

    def __init__(self, folder: Path, history: list[CurveRecord]) -> None:
        # imported here: the extra is optional (TrainConfig.tensorboard checks it is installed)
        from torch.utils.tensorboard import SummaryWriter

        shutil.rmtree(folder, ignore_errors=True)
        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder))
        for record in history:
            self.write(record)

    def write(self, record: CurveRecord) -> None:
        step, values = scalars(record)
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # a TensorBoard watching the run sees each epoch as it ends

    def close(self) -> None:
        self.writer.close()
