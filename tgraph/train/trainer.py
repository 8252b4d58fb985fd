"""The training loop: mini-batches of training events, negatives, early stopping on validation.

One epoch visits every training event once, in a shuffled order, in batches of
``batch_size``. After every ``eval_every`` epochs the model is ranked on the **validation**
targets; the epoch with the best ``valid_metric`` is kept (its weights are restored at the
end) and training stops after ``patience`` evaluations without improvement, or at the first
epoch end past ``time_budget_s`` (that epoch is validated too). With ``lr_decay < 1`` the
learning rate is multiplied by ``lr_decay`` after every ``lr_patience`` evaluations without
improvement (reduce-on-plateau). The test part is never looked at.

With ``refit``, after selection the validation events join the training events (and, through
:meth:`~tgraph.models.base.Recommender.observe`, the model's graph) and the model is trained
again from its seeded initialisation for the selected number of epochs, each with the learning
rate it had in the selection run: the usual last step when the validation part was carved out
of the training data. Nothing is selected during the refit, and it is not checkpointed midway.

Per-epoch records go to ``Trainer.history`` and, if ``log_path`` is set, to a JSONL file;
with ``checkpoint_dir`` every epoch ends with ``last.pt`` (resume with
``fit(resume=True)``), every improvement with ``best.pt``, and a refit with ``refit.pt``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tgraph.data.interactions import Interactions
from tgraph.data.split import Split
from tgraph.eval.evaluator import EvalResult, Evaluator
from tgraph.models.base import Batch, Recommender, build_queries, context_events
from tgraph.train.checkpoint import load_checkpoint, save_checkpoint
from tgraph.train.negatives import make_sampler
from tgraph.train.seed import seed_everything

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Trainer options (model hyper-parameters live in the model's config)."""

    epochs: int = 100
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "sgd"
    n_neg: int = 1  # negatives per positive (ignored by the full "ce" loss)
    negatives: str = "uniform"  # "uniform" | "popularity" | "spatial"
    neg_exclude_history: bool = False
    neg_alpha: float = 0.75  # popularity exponent
    neg_k: int = 50  # spatial neighbourhood size
    min_history: int = 0  # sequence models: skip training targets with a shorter history
    metrics: tuple[str, ...] = ("recall@20", "ndcg@20")
    valid_metric: str = "ndcg@20"
    eval_every: int = 1
    patience: int = 10  # evaluations without improvement before stopping
    lr_decay: float = 1.0  # reduce-on-plateau factor (1.0: constant learning rate)
    lr_patience: int = 2  # evaluations without improvement before each decay
    time_budget_s: float | None = None  # wall-clock limit on training + validation
    refit: bool = False  # after selection, retrain from scratch on train + valid
    eval_batch_size: int = 1024
    device: str = "cpu"
    seed: int = 0
    checkpoint_dir: str | None = None
    log_path: str | None = None
    progress: bool = True

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None) -> TrainConfig:
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise KeyError(f"unknown trainer option(s) {unknown}; known: {sorted(known)}")
        if "metrics" in config:
            config["metrics"] = tuple(config["metrics"])
        out = cls(**config)
        if not 0 < out.lr_decay <= 1:
            raise ValueError(f"lr_decay={out.lr_decay}: use a factor in (0, 1] (1 disables it)")
        if out.lr_patience < 1:
            raise ValueError(f"lr_patience={out.lr_patience}: use an integer >= 1")
        return out


class Trainer:
    """Trains ``model`` on ``split.train`` and selects the epoch on ``split``'s validation part.

    The constructor seeds every generator with ``config.seed`` (build the model after
    :func:`~tgraph.train.seed.seed_everything` too, so that initialisation is seeded) and
    moves the model to ``config.device``.
    """

    def __init__(self, model: Recommender, split: Split, config: TrainConfig | dict | None = None):
        self.config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        cfg = self.config
        if cfg.valid_metric.lower() not in [m.lower() for m in cfg.metrics]:
            cfg.metrics = (*cfg.metrics, cfg.valid_metric)
        seed_everything(cfg.seed)
        self.generator = np.random.default_rng(cfg.seed)
        self.device = torch.device(cfg.device)
        self.model = model.to(self.device)
        self.split = split
        self.evaluator = Evaluator(split, "valid", cfg.metrics, cfg.eval_batch_size)
        self.history: list[dict[str, Any]] = []
        self.best_value = -np.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_evals = 0
        self.evals_since_decay = 0  # evaluations without improvement since the last lr decay
        self.elapsed_s = 0.0  # training + validation (+ refit) time, carried over on resume
        self.epoch = 0
        self.optimizer = self._optimizer() if model.needs_training else None
        if cfg.refit and type(model).observe is Recommender.observe:
            model.observe(split.train)  # raises the model's error now, not after training
        self.sampler = self._sampler(split.train)
        self._samples = None
        if model.needs_training:
            self._samples = self._training_samples(split.train, context_events(split, "train"))

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        params = self.model.parameters()
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        raise KeyError(f"unknown optimizer {cfg.optimizer!r}; choose 'adam' or 'sgd'")

    def _sampler(self, train: Interactions):
        """The negative sampler over ``train`` (``None`` when nothing is sampled)."""
        cfg = self.config
        if not self.model.needs_training or self.model.config.get("loss") == "ce":
            return None
        options: dict[str, Any] = {"exclude_history": cfg.neg_exclude_history}
        if cfg.negatives == "popularity":
            options["alpha"] = cfg.neg_alpha
        if cfg.negatives == "spatial":
            options["k"] = cfg.neg_k
        return make_sampler(cfg.negatives, train, **options)

    def _training_samples(self, train: Interactions, context: pd.DataFrame):
        """Queries (with history strictly before each event) and positives of ``train``'s
        events, the history taken from ``context``."""
        events = train.events
        queries = build_queries(
            events["user"].to_numpy(),
            events["timestamp"].to_numpy(),
            context,
            self.model.history_len,
            self.split.n_items,
            train.items,
        )
        positives = torch.from_numpy(events["item"].to_numpy(np.int64).copy())
        if self.model.history_len and self.config.min_history > 0:
            keep = queries.hist_len >= self.config.min_history
            log.info(
                "training targets with history >= %d: %d of %d",
                self.config.min_history,
                int(keep.sum()),
                len(keep),
            )
            queries, positives = queries[keep], positives[keep]
        return queries, positives

    # ------------------------------------------------------------------ loop
    def train_epoch(self, max_batches: int | None = None) -> float:
        """One pass over the training events (or its first ``max_batches`` batches, for
        benchmarks); returns the mean batch loss."""
        cfg = self.config
        queries, positives = self._samples
        order = self.generator.permutation(len(positives))
        if max_batches is not None:
            order = order[: max_batches * cfg.batch_size]
        self.model.train()
        total, batches = 0.0, 0
        starts = range(0, len(order), cfg.batch_size)
        bar = tqdm(starts, desc=f"epoch {self.epoch + 1}", disable=not cfg.progress, leave=False)
        for lo in bar:
            index = torch.from_numpy(order[lo : lo + cfg.batch_size])
            batch_queries, pos = queries[index], positives[index]
            neg = None
            if self.sampler is not None:
                neg = self.sampler.sample(
                    batch_queries.user.numpy(), pos.numpy(), cfg.n_neg, self.generator
                )
                neg = torch.from_numpy(neg)
            batch = Batch(batch_queries, pos, neg).to(self.device)
            loss = self.model.calculate_loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.4f}")
        return total / max(batches, 1)

    def fit(
        self,
        resume: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``epochs`` or early stopping; restores the best weights; returns the log.

        ``on_epoch(record)`` is called after every validation with that epoch's record (e.g.
        to report to an Optuna trial); an exception it raises stops training.
        """
        cfg = self.config
        if not self.model.needs_training:
            self.model.fit(self.split.train)
            result = self.evaluator.evaluate(self.model)
            self.best_epoch, self.best_value = 0, result.metrics[cfg.valid_metric.lower()]
            self._record({"epoch": 0, **_prefixed(result)})
            if on_epoch is not None:
                on_epoch(self.history[-1])
            return self.history
        last = None if cfg.checkpoint_dir is None else Path(cfg.checkpoint_dir) / "last.pt"
        if resume and last is not None and last.exists():
            self._resume(last)
        while self.epoch < cfg.epochs and self.bad_evals < cfg.patience and not self._out_of_time():
            record = self._timed_epoch()
            if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs or self._out_of_time():
                start = time.perf_counter()
                result = self.evaluator.evaluate(self.model)
                record.update(_prefixed(result), eval_s=time.perf_counter() - start)
                self.elapsed_s += record["eval_s"]
                self._update_best(result)
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            self._record(record)
            self._save("last.pt", epoch=self.epoch, state=self._state(), optimizer=self.optimizer)
            if on_epoch is not None and "eval_s" in record:
                on_epoch(record)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        log.info("best %s = %.5f at epoch %d", cfg.valid_metric, self.best_value, self.best_epoch)
        if cfg.refit:
            self.refit()
        return self.history

    def refit(self) -> None:
        """Retrain from scratch on the training plus validation events for the selected number
        of epochs, with the learning rates those epochs had (see the module docstring); the
        records carry ``"refit": True``."""
        if self.split.valid is None or self.best_epoch < 1:
            raise ValueError("refit needs a validation part and a selected epoch (train.refit)")
        train, valid = self.split.train, self.split.valid
        events = pd.concat([train.events, valid.events], ignore_index=True)
        combined = train.with_events(events.sort_values("timestamp", kind="stable"))
        # the learning rate of epoch e is the one recorded at the end of epoch e - 1
        lrs = [self.config.lr] + [r["lr"] for r in self.history[: self.best_epoch - 1]]
        log.info("refit: %d epochs on %d train + valid events", self.best_epoch, len(combined))
        seed_everything(self.config.seed)  # the initialisation of the selection run
        self.model = type(self.model)(self.split, self.model.config).to(self.device)
        self.model.observe(combined)
        self.optimizer = self._optimizer()
        self.sampler = self._sampler(combined)
        self._samples = self._training_samples(combined, context_events(self.split, "valid"))
        for refit_epoch, lr in enumerate(lrs, start=1):
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            record = self._timed_epoch()
            self._record({**record, "lr": lr, "refit_epoch": refit_epoch, "refit": True})
        self._save("refit.pt", epoch=self.best_epoch, state={"refit_events": len(combined)})

    def _timed_epoch(self) -> dict[str, Any]:
        """Train one epoch; return its record (``epoch``, ``loss``, ``train_s``), the time added
        to ``elapsed_s``."""
        start = time.perf_counter()
        loss = self.train_epoch()
        self.epoch += 1
        record = {"epoch": self.epoch, "loss": loss, "train_s": time.perf_counter() - start}
        self.elapsed_s += record["train_s"]
        return record

    def evaluate(self, part: str = "test", metrics: tuple[str, ...] | None = None) -> EvalResult:
        """Rank ``part`` with the current weights (after :meth:`fit`: the best, or refitted)."""
        metrics = metrics or self.config.metrics
        evaluator = Evaluator(self.split, part, metrics, self.config.eval_batch_size)
        return evaluator.evaluate(self.model)

    # ------------------------------------------------------------------ bookkeeping
    def _update_best(self, result: EvalResult) -> None:
        value = result.metrics[self.config.valid_metric.lower()]
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_evals = value, self.epoch, 0
            self.evals_since_decay = 0
            state = self.model.state_dict()
            self.best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
            self._save("best.pt", epoch=self.epoch, state={"best_value": value})
        else:
            self.bad_evals += 1
            self.evals_since_decay += 1
            if self.config.lr_decay < 1 and self.evals_since_decay >= self.config.lr_patience:
                self.evals_since_decay = 0
                for group in self.optimizer.param_groups:
                    group["lr"] *= self.config.lr_decay
                lr = self.optimizer.param_groups[0]["lr"]
                log.info("epoch %d: lr decayed to %.3g", self.epoch, lr)

    def _save(
        self,
        name: str,
        epoch: int,
        state: dict[str, Any],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        """Write ``checkpoint_dir/name`` (nothing without a ``checkpoint_dir``)."""
        if self.config.checkpoint_dir is not None:
            save_checkpoint(
                Path(self.config.checkpoint_dir) / name,
                model=self.model,
                optimizer=optimizer,
                epoch=epoch,
                generator=self.generator,
                state=state,
            )

    def _out_of_time(self) -> bool:
        """Past ``time_budget_s`` (never before the first epoch)."""
        budget = self.config.time_budget_s
        return budget is not None and self.epoch > 0 and self.elapsed_s >= budget

    def _record(self, record: dict[str, Any]) -> None:
        record["best_epoch"] = self.best_epoch
        self.history.append(record)
        if self.config.log_path is not None:
            path = Path(self.config.log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _state(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_evals": self.bad_evals,
            "evals_since_decay": self.evals_since_decay,
            "elapsed_s": self.elapsed_s,
            "config": asdict(self.config),
        }

    def _resume(self, path: Path) -> None:
        loaded = load_checkpoint(
            path, model=self.model, optimizer=self.optimizer, generator=self.generator
        )
        state = loaded["state"]
        self.epoch = loaded["epoch"]
        self.history = list(state["history"])
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_state, self.bad_evals = state["best_state"], state["bad_evals"]
        self.evals_since_decay = state["evals_since_decay"]
        self.elapsed_s = state["elapsed_s"]
        log.info("resumed from %s at epoch %d", path, self.epoch)


def _prefixed(result: EvalResult) -> dict[str, float]:
    return {f"{result.part}_{name}": value for name, value in result.metrics.items()}
