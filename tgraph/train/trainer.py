"""The training loop: mini-batches of training events, negatives, early stopping on validation.

One epoch visits every training event once, in a shuffled order, in batches of
``batch_size`` (with ``epoch_sampling: users``, as many samples drawn user-uniformly:
:mod:`tgraph.train.epoch_order`). After every ``eval_every`` epochs the model is ranked on
the **validation** targets; the epoch with the best ``valid_metric`` is kept (its weights
are restored at the end) and training stops after ``patience`` evaluations without
improvement, or at the first epoch end past ``time_budget_s`` (that epoch is validated too).
With ``lr_decay < 1`` the learning rate is multiplied by ``lr_decay`` after every
``lr_patience`` evaluations without improvement (reduce-on-plateau). The test part is never
looked at.

With ``refit``, after selection the validation events join the training events (and, through
:meth:`~tgraph.models.base.Recommender.observe`, the model's graph) and the model is trained
again from its seeded initialisation for the selected number of epochs, each with the learning
rate it had in the selection run: the usual last step when the validation part was carved out
of the training data. Nothing is selected during the refit. Every refit epoch ends with the
refit's own last checkpoint, so a resume continues a refit where it stopped (a refit as long as
the selection is not started again).
The refit's model comes from ``rebuild`` (the recipe that built the first one, seeded again).

With ``fold_valid``, after selection the validation events are folded into the selected model
without a gradient step (:meth:`~tgraph.models.base.Recommender.update`, or ``observe`` of the
training plus validation events for a model that rebuilds what it derives from events): its
graph, hypergraph or transition counts then hold every event before the test period, as they
held every event before the validation period when it was validated. Test queries read the
validation period through their histories in any case; this gives the model's event-derived
state the same view. It needs every validation event strictly before the first test target
(refused otherwise: the fold would leak test-period events); events the model's ``update``
refuses stop the run when the trainer is built (it folds them into a copy first). The
checkpoints keep the model as selected.

Per-epoch records (:class:`~tgraph.runs.records.CurveRecord`) go to ``Trainer.history`` and,
with a ``run_dir``, to its curve; there every epoch ends with the last checkpoint (resume with
``fit(resume=True)``), every improvement with the best one, every refit epoch with the refit's
last one and the refit with the refit one (:class:`~tgraph.runs.layout.RunLayout`). On resume
the curve is rewritten from the checkpoint's history before training continues, so epochs
recorded after the last checkpoint (a kill between a record and its checkpoint) are never
recorded twice. Trainer options may differ from the checkpoint's only in
:data:`~tgraph.runs.fingerprint.AMENDABLE` keys; a changed learning rate or weight decay is set
on the optimizer explicitly (its restored state would keep the old values), and every change is
recorded on the next curve record.

Launched by torchrun with several processes (``tgraph run --nproc N``), the trainer trains
data-parallel: each rank a disjoint shard of every epoch, gradients averaged by DDP,
validation shared by the ranks (each ranks a share of the queries, rank 0 the metrics), files
written by rank 0 (see :mod:`tgraph.train.distributed`).

With ``train.sampling`` the graph models train on neighbour-sampled blocks around each
batch instead of the whole graph, and are evaluated by layer-wise full-graph inference in
chunks (:meth:`~tgraph.models.base.Recommender.use_sampling`, :mod:`tgraph.graph.sampling`).

With ``train.tensorboard`` the records also go to the run directory's TensorBoard folder
(:mod:`tgraph.train.tensorboard`); with ``progress`` off (no tqdm bars) each record is logged
as one line: epoch, loss, the validation metric and the epoch's seconds.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tgraph.config import validate_model
from tgraph.data.interactions import Interactions
from tgraph.data.queries import (
    Queries,
    build_queries,
    context_events,
    history_index,
    previous_event_gap,
)
from tgraph.data.split import Split
from tgraph.errors import ConfigError, DataError, RunDirError
from tgraph.eval.evaluator import EvalResult, Evaluator
from tgraph.graph.sampling import NeighborSampling
from tgraph.models.base import Batch, Recommender
from tgraph.runs.fingerprint import AMENDABLE, IGNORED, flatten
from tgraph.runs.records import Amendment, CurveRecord
from tgraph.runs.rundir import RunDir
from tgraph.train import distributed
from tgraph.train.checkpoint import restore_checkpoint, rng_states, save_checkpoint, set_rng_states
from tgraph.train.config import TrainConfig
from tgraph.train.epoch_order import UserSamples
from tgraph.train.lazy_adam import LazyAdam
from tgraph.train.negatives import NegativeSampler, make_sampler
from tgraph.train.seed import seed_everything
from tgraph.train.tensorboard import TensorBoardCurve

log = logging.getLogger(__name__)


def make_optimizer(model: Recommender, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``model``'s parameters with its ``lr`` and ``weight_decay``."""
    params = model.parameters()
    if config.sampling is not None and config.sampling.sparse:
        return LazyAdam(params, lr=config.lr)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    raise KeyError(f"unknown optimizer {config.optimizer!r}; choose 'adam' or 'sgd'")


def negative_sampler(
    model: Recommender, config: TrainConfig, train: Interactions
) -> NegativeSampler | None:
    """The negative sampler over ``train`` (``None`` when nothing is sampled: statistical
    models and the full ``"ce"`` loss)."""
    if not model.needs_training or model.config.loss == "ce":
        return None
    options: dict[str, Any] = {"exclude_history": config.neg_exclude_history}
    if config.negatives == "popularity":
        options["alpha"] = config.neg_alpha
    if config.negatives == "spatial":
        options["k"] = config.neg_k
    return make_sampler(config.negatives, train, **options)


def gradient_step(
    model: Recommender,
    optimizer: torch.optim.Optimizer,
    sampler: NegativeSampler | None,
    queries: Queries,
    positives: torch.Tensor,
    n_neg: int,
    generator: np.random.Generator,
    device: torch.device,
    loss_fn: Callable[[Batch], torch.Tensor] | None = None,
) -> float:
    """One optimiser step of ``model``'s training loss (or of ``loss_fn``, e.g. the loss in
    DDP) on a batch (negatives drawn by ``sampler`` with ``generator``); returns the loss."""
    neg = None
    if sampler is not None:
        neg = torch.from_numpy(
            sampler.sample(queries.user.numpy(), positives.numpy(), n_neg, generator)
        )
    loss = (loss_fn or model.calculate_loss)(Batch(queries, positives, neg).to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


class Trainer:
    """Trains ``model`` on ``split.train`` and selects the epoch on ``split``'s validation part.

    The constructor seeds every generator with ``seed`` (build the model after
    :func:`~tgraph.train.seed.seed_everything` too, so that initialisation is seeded) and
    moves the model to ``device``. With ``run_dir`` it writes the curve and checkpoints there.
    ``rebuild()`` returns a fresh model built as ``model`` was, seeded again (needed by
    ``train.refit``; :func:`tgraph.train.recipe.train_one` passes it).
    """

    def __init__(
        self,
        model: Recommender,
        split: Split,
        config: TrainConfig | dict | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        run_dir: RunDir | None = None,
        rebuild: Callable[[], Recommender] | None = None,
    ):
        self.config = validate_model(TrainConfig, config, "train")
        cfg = self.config
        if cfg.refit and rebuild is None:
            raise ValueError("train.refit needs the model's recipe: pass rebuild=")
        self.dist = distributed.context()
        self._batch = distributed.check_batch_size(cfg.batch_size, self.dist)  # each rank's
        if cfg.tensorboard and run_dir is None and self.dist.is_main:
            raise ConfigError(
                "TensorBoard curves are written into the run directory, and there is none",
                key="train.tensorboard",
                fix="pass run_dir= to the Trainer (tgraph run does), or set it to false",
            )
        self.seed = seed
        self.run_dir = run_dir
        self.rebuild = rebuild
        seed_everything(seed)
        self.generator = np.random.default_rng(seed)  # alike on every rank: the permutations
        # each rank's negatives: its own stream when several processes train
        self.negatives_generator = (
            np.random.default_rng([seed, self.dist.rank]) if self.dist.active else self.generator
        )
        self.device = torch.device(distributed.rank_device(str(device), self.dist))
        self._parallel: torch.nn.Module | None = None  # the loss in DDP (several processes)
        self.model = model.to(self.device)
        self.neighbors: NeighborSampling | None = None  # train.sampling's block sampler
        self.neighbors_sparse = cfg.sampling is not None and cfg.sampling.sparse
        if cfg.sampling is not None:
            sampling = cfg.sampling
            self.neighbors = NeighborSampling(
                sampling.fanouts, sampling.replace, sampling.inference_chunk
            )
            self.model.use_sampling(self.neighbors, sparse=sampling.sparse)
            if sampling.sparse and self.dist.active:
                raise ConfigError(
                    "sparse gradients are not averaged across processes",
                    key="train.sampling.sparse",
                    fix="set sparse: false, or train in one process (no --nproc)",
                )
        self.split = split
        self.evaluator = Evaluator(split, "valid", cfg.metrics, cfg.eval_batch_size)
        self.history: list[CurveRecord] = []
        self._board: TensorBoardCurve | None = None  # open during fit with train.tensorboard
        self._amendments: list[Amendment] = []  # made on resume, recorded with the next epoch
        self.best_value = -np.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        #: the validation metrics after :meth:`Recommender.calibrate` (``None``: nothing to
        #: calibrate; the selected epoch's record holds them)
        self.calibrated_valid: dict[str, float] | None = None
        self.bad_evals = 0
        self.evals_since_decay = 0  # evaluations without improvement since the last lr decay
        self.elapsed_s = 0.0  # training + validation (+ refit) time, carried over on resume
        self.epoch = 0
        self._refit_progress: dict[str, Any] | None = None  # a refit's checkpoint, on resume
        # models fitted in closed form (needs_training False) have no optimizer and samples
        self.optimizer: torch.optim.Optimizer | None = (
            self._optimizer() if model.needs_training else None
        )
        if cfg.refit and type(model).observe is Recommender.observe:
            model.observe(split.train)  # raises the model's error now, not after training
        if cfg.fold_valid:
            valid = self._foldable_valid()  # refused now, not after training
            if model.supports_update:
                self._try_fold(valid)
            elif type(model).observe is Recommender.observe:
                raise ConfigError(
                    f"model {type(model).__name__} can neither update nor observe events, so "
                    "it cannot fold the validation events in",
                    key="train.fold_valid",
                    fix="set train.fold_valid: false",
                )
        self.sampler = self._sampler(split.train)
        self._samples: tuple[Queries, torch.Tensor] | None = None
        self._user_samples: UserSamples | None = None  # train.epoch_sampling users, lazily
        if model.needs_training:
            self._samples = self._training_samples(split.train, context_events(split, "train"))

    def _optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.model, self.config)

    def _sampler(self, train: Interactions) -> NegativeSampler | None:
        return negative_sampler(self.model, self.config, train)

    def _training_samples(self, train: Interactions, context: pd.DataFrame):
        """Queries (with history strictly before each event) and positives of ``train``'s
        events, the history taken from ``context``; with ``split.query_time`` hidden a
        sample's time is its user's last earlier event's (:func:`build_queries`)."""
        events = train.events
        hidden = self.split.query_time == "hidden"
        queries = build_queries(
            events["user"].to_numpy(),
            events["timestamp"].to_numpy(),
            history_index(context) if self.model.history_len or hidden else None,
            self.model.history_len,
            self.split.n_items,
            train.items,
            offsets=events["tz_offset"].to_numpy() if train.has("tz_offset") else None,
            query_time=self.split.query_time,
            cut=self.split.query_cut("train"),
        )
        positives = torch.from_numpy(events["item"].to_numpy(np.int64).copy())
        keep = torch.ones(len(events), dtype=torch.bool)
        cfg = self.config
        if self.model.history_len and cfg.min_history > 0:
            assert queries.hist_len is not None  # built with history_len > 0
            keep &= queries.hist_len >= cfg.min_history
            log.info(
                "training targets with history >= %d: %d of %d",
                cfg.min_history,
                int(keep.sum()),
                len(keep),
            )
        if cfg.max_target_gap_hours is not None:
            gap = previous_event_gap(events["user"].to_numpy(), events["timestamp"].to_numpy())
            keep &= torch.from_numpy(gap <= cfg.max_target_gap_hours * 3600)
            if not keep.any():
                raise ConfigError(
                    f"no training target is within {cfg.max_target_gap_hours} h of its "
                    "user's previous training event",
                    key="train.max_target_gap_hours",
                    fix="raise it, or set it to null to train on every event",
                )
            log.info(
                "training targets within %g h of their user's previous event: %d of %d",
                cfg.max_target_gap_hours,
                int(keep.sum()),
                len(keep),
            )
        if not keep.all():
            queries, positives = queries[keep], positives[keep]
        return queries, positives

    # ------------------------------------------------------------------ loop
    def train_epoch(self, max_batches: int | None = None) -> float:
        """One pass over the training events (or its first ``max_batches`` batches, for
        benchmarks); returns the mean batch loss."""
        cfg = self.config
        assert self.optimizer is not None and self._samples is not None  # needs_training
        queries, positives = self._samples
        order = self._epoch_order(max_batches)
        self.model.train()
        loss_fn = None
        if self.dist.active:
            first = torch.from_numpy(order[: self._batch])
            loss_fn = self._parallel_loss(queries[first], positives[first])
        total, batches = 0.0, 0
        starts = range(0, len(order), self._batch)
        show = cfg.progress and self.dist.is_main
        bar = tqdm(starts, desc=f"epoch {self.epoch + 1}", disable=not show, leave=False)
        for lo in bar:
            index = torch.from_numpy(order[lo : lo + self._batch])
            total += gradient_step(
                self.model,
                self.optimizer,
                self.sampler,
                queries[index],
                positives[index],
                cfg.n_neg,
                self.negatives_generator,
                self.device,
                loss_fn,
            )
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.4f}")
        return total / max(batches, 1)

    def _epoch_order(self, max_batches: int | None = None) -> np.ndarray:
        """The indices of the training samples this epoch visits, in order
        (``train.epoch_sampling``): this rank's shard when several processes train, the first
        ``max_batches`` batches of it if given."""
        assert self._samples is not None  # needs_training
        queries, positives = self._samples
        if self.config.epoch_sampling == "users":
            if self._user_samples is None:
                self._user_samples = UserSamples(queries.user.numpy())
            order = self._user_samples.draw(len(positives), self.generator)
        else:
            order = self.generator.permutation(len(positives))
        if self.dist.active:  # this rank's shard, in its part of every global batch
            order = distributed.shard(order, self.dist.rank, self.dist.world_size)
        if max_batches is not None:
            order = order[: max_batches * self._batch]
        return order

    def _parallel_loss(self, queries: Queries, positives: torch.Tensor) -> torch.nn.Module:
        """The current model's loss in DDP (wrapped again after the refit rebuilds it); the
        batch ``queries``/``positives`` tells whether the loss leaves parameters unused."""
        wrapped = self._parallel
        if wrapped is None or wrapped.module.model is not self.model:
            unused = self._leaves_parameters_unused(queries, positives)
            if unused:
                log.info("the loss leaves parameters unused: DDP looks for them at every step")
            wrapped = distributed.wrap(self.model, self.device, find_unused=unused)
            self._parallel = wrapped
        return wrapped

    def _leaves_parameters_unused(self, queries: Queries, positives: torch.Tensor) -> bool:
        """Whether the loss on this batch leaves a trainable parameter without a gradient, on
        any rank (DDP must then look for them at every step). Nothing is kept: no gradient,
        no draw from the trainer's generators (the negatives come from a throwaway one)."""
        neg = None
        if self.sampler is not None:
            neg = torch.from_numpy(
                self.sampler.sample(
                    queries.user.numpy(),
                    positives.numpy(),
                    self.config.n_neg,
                    np.random.default_rng(self.seed),
                )
            )
        params = [p for p in self.model.parameters() if p.requires_grad]
        loss = self.model.calculate_loss(Batch(queries, positives, neg).to(self.device))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return distributed.on_any_rank(any(g is None for g in grads), self.dist)

    def _validate(self) -> tuple[dict[str, float], float]:
        """Validation metrics and seconds, the same on every rank: each rank ranks its share
        of the queries, rank 0 computes the metrics and sends them (with its seconds)."""
        start = time.perf_counter()
        result = self.evaluator.evaluate_sharded(self.model, self.dist.rank, self.dist.world_size)
        metrics = None if result is None else result.metrics
        seconds = time.perf_counter() - start
        return distributed.broadcast((metrics, seconds), self.dist)

    def fit(
        self,
        resume: bool = False,
        on_epoch: Callable[[CurveRecord], None] | None = None,
    ) -> list[CurveRecord]:
        """Train until ``epochs`` or early stopping; restores the best weights; returns the log.

        ``on_epoch(record)`` is called after every validation with that epoch's record (e.g.
        to report to an Optuna trial); an exception it raises stops training.
        """
        last = None if self.run_dir is None else self.run_dir.layout.last_checkpoint
        found = last is not None and last.exists()
        if resume and self.model.needs_training and distributed.broadcast(found, self.dist):
            self._resume(last)  # rank 0 reads it (the other ranks have no run directory)
        if self.run_dir is not None:
            self.run_dir.write_curve(self.history)
            if self.config.tensorboard:
                self._board = TensorBoardCurve(self.run_dir.layout.tensorboard, self.history)
        try:
            history = self._fit(last, on_epoch)
            if self.dist.active:
                digest = distributed.check_replicas(self.model, self.dist)
                log.info("parameters identical on %d ranks (%s)", self.dist.world_size, digest)
            return history
        finally:
            if self._board is not None:
                self._board.close()
                self._board = None

    def _fit(
        self, last: Path | None, on_epoch: Callable[[CurveRecord], None] | None
    ) -> list[CurveRecord]:
        """:meth:`fit` without its bookkeeping (``last``: the checkpoint rewritten after every
        epoch): fit or train, then fold the validation events in (``fold_valid``)."""
        if self.model.needs_training:
            self._train(last, on_epoch)
        else:
            self._fit_statistics(on_epoch)
        if self.config.fold_valid:
            self.fold_valid()
        return self.history

    def _fit_statistics(self, on_epoch: Callable[[CurveRecord], None] | None) -> None:
        """A model fitted in closed form (``needs_training`` False): fit, validate once."""
        self.model.fit(self.split.train)
        metrics, _ = self._validate()
        self.best_epoch, self.best_value = 0, metrics[self.config.valid_metric]
        self._record(CurveRecord(epoch=0, valid=metrics))
        if on_epoch is not None:
            on_epoch(self.history[-1])

    def _train(self, last: Path | None, on_epoch: Callable[[CurveRecord], None] | None) -> None:
        """The epoch loop, then the best epoch's weights, calibration and ``refit``."""
        cfg = self.config
        assert self.optimizer is not None  # needs_training
        while not self._selection_done():
            record = self._timed_epoch()
            if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs or self._out_of_time():
                metrics, seconds = self._validate()
                record.valid, record.eval_s = metrics, seconds
                self.elapsed_s += seconds
                self._update_best(metrics)
            record.lr = self.optimizer.param_groups[0]["lr"]
            self._record(record)
            self._save(last, epoch=self.epoch, state=self._state(), optimizer=self.optimizer)
            if on_epoch is not None and record.validated:
                on_epoch(record)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        log.info("best %s = %.5f at epoch %d", cfg.valid_metric, self.best_value, self.best_epoch)
        self._calibrate()
        if cfg.refit:
            self.refit()

    def _selection_done(self) -> bool:
        """Whether the epoch loop is over: ``epochs`` trained, ``patience`` spent or out of
        time."""
        cfg = self.config
        return self.epoch >= cfg.epochs or self.bad_evals >= cfg.patience or self._out_of_time()

    def _calibrate(self) -> None:
        """The model's post-training choices on validation (``Recommender.calibrate``), kept
        in the best state and checkpoint; the best value and :attr:`calibrated_valid` become
        the calibrated model's."""
        metric = self.config.valid_metric
        if not self.model.calibrate(lambda: self._validate()[0][metric]):
            return
        self.calibrated_valid = self._validate()[0]
        self.best_value = self.calibrated_valid[metric]
        state = self.model.state_dict()
        self.best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
        best = None if self.run_dir is None else self.run_dir.layout.best_checkpoint
        self._save(best, epoch=self.best_epoch, state={"best_value": self.best_value})
        log.info("calibrated on validation: %s = %.5f", metric, self.best_value)

    def refit(self) -> None:
        """Retrain from scratch on the training plus validation events for the selected number
        of epochs, with the learning rates (and weight decays) those epochs had (see the module
        docstring); the records carry ``refit=True``."""
        if self.split.valid is None or self.best_epoch < 1:
            raise ValueError("refit needs a validation part and a selected epoch (train.refit)")
        if self.rebuild is None:
            raise ValueError("refit needs the model's recipe: pass rebuild= to the Trainer")
        combined = self._train_and_valid()
        schedule = self._schedule(self.best_epoch)
        log.info("refit: %d epochs on %d train + valid events", self.best_epoch, len(combined))
        self.model = self.rebuild().to(self.device)  # the initialisation of the selection run
        if self.neighbors is not None:
            self.model.use_sampling(self.neighbors, sparse=self.neighbors_sparse)
        self.model.observe(combined)
        self.optimizer = self._optimizer()
        self.sampler = self._sampler(combined)
        self._samples = self._training_samples(combined, context_events(self.split, "valid"))
        self._user_samples = None
        selection_epoch = self.epoch
        done = self._restore_refit()
        last = None if self.run_dir is None else self.run_dir.layout.refit_last_checkpoint
        for refit_epoch, (lr, weight_decay) in enumerate(schedule, start=1):
            if refit_epoch <= done:
                continue
            for group in self.optimizer.param_groups:
                group["lr"], group["weight_decay"] = lr, weight_decay
            record = self._timed_epoch()
            record.lr, record.refit, record.refit_epoch = lr, True, refit_epoch
            self._record(record)
            state = {**self._state(), "selection_epoch": selection_epoch}
            self._save(last, epoch=self.epoch, state=state, optimizer=self.optimizer)
        self._save(
            None if self.run_dir is None else self.run_dir.layout.refit_checkpoint,
            epoch=self.best_epoch,
            state={"refit_events": len(combined)},
        )

    def fold_valid(self) -> None:
        """Fold the validation events into the selected model before test (module
        docstring); nothing is trained and nothing is validated afterwards."""
        valid = self._foldable_valid()
        if self.model.supports_update:
            self.model.update(valid)
        else:
            self.model.observe(self._train_and_valid())
        log.info("fold_valid: %d validation events folded into the model before test", len(valid))

    def _try_fold(self, valid: Interactions) -> None:
        """Fold ``valid`` into a copy of the untrained model, so that events its ``update``
        refuses (e.g. ``sthrec``: a POI without a region) stop the run before training."""
        try:
            copy.deepcopy(self.model).update(valid)
        except (NotImplementedError, DataError) as err:
            raise ConfigError(
                f"model {type(self.model).__name__} cannot fold the validation events in: {err}",
                key="train.fold_valid",
                fix="set train.fold_valid: false",
            ) from err

    def _train_and_valid(self) -> Interactions:
        """The training plus validation events, in time order (stable: ties keep order)."""
        train, valid = self.split.train, self.split.valid
        assert valid is not None
        events = pd.concat([train.events, valid.events], ignore_index=True)
        return train.with_events(events.sort_values("timestamp", kind="stable"))

    def _foldable_valid(self) -> Interactions:
        """The validation events, checked to lie strictly before every test target."""
        valid = self.split.valid
        if valid is None or len(valid) == 0:
            raise ConfigError(
                f"protocol {self.split.protocol!r} has no validation events to fold in",
                key="train.fold_valid",
                fix="set train.fold_valid: false",
            )
        first_target = int(self.split.test_targets["timestamp"].min())
        late = int((valid.events["timestamp"] >= first_target).sum())
        if late:
            raise ConfigError(
                f"{late} of protocol {self.split.protocol!r}'s {len(valid)} validation events "
                "are not before its first test target: folding them in would show the model "
                "test-period events",
                key="train.fold_valid",
                fix="set train.fold_valid: false (or train.refit: true, which trains on them)",
            )
        return valid

    def _schedule(self, epochs: int) -> list[tuple[float, float]]:
        """``(lr, weight_decay)`` of each of the first ``epochs`` selection epochs: the
        learning rate of epoch e is the one recorded at the end of epoch e - 1, unless a resume
        amended it at the start of epoch e (so is the weight decay)."""
        selection = [r for r in self.history if not r.refit]
        amended = [a for r in selection for a in r.amendments]
        lr = next((a.old for a in amended if a.key == "train.lr"), self.config.lr)
        decay = next((a.old for a in amended if a.key == "train.weight_decay"), None)
        weight_decay = self.config.weight_decay if decay is None else decay
        schedule = []
        for record in selection[:epochs]:
            for a in record.amendments:
                if a.key == "train.lr":
                    lr = a.new
                if a.key == "train.weight_decay":
                    weight_decay = a.new
            schedule.append((lr, weight_decay))
            lr = record.lr
        return schedule

    def _timed_epoch(self) -> CurveRecord:
        """Train one epoch; return its record (``epoch``, ``loss``, ``train_s``), the time added
        to ``elapsed_s``."""
        start = time.perf_counter()
        loss = self.train_epoch()
        self.epoch += 1
        seconds = time.perf_counter() - start
        if self.dist.active:  # the mean loss over ranks, the slowest rank's time
            (loss,) = distributed.all_reduce([loss], "sum", self.dist)
            loss /= self.dist.world_size
            (seconds,) = distributed.all_reduce([seconds], "max", self.dist)
        record = CurveRecord(epoch=self.epoch, loss=loss, train_s=seconds)
        self.elapsed_s += seconds
        return record

    def evaluate(
        self, part: str = "test", metrics: tuple[str, ...] | list[str] | None = None
    ) -> EvalResult:
        """Rank ``part`` with the current weights (after :meth:`fit`: the best, or refitted),
        in this process alone."""
        return self._evaluator(part, metrics).evaluate(self.model)

    def evaluate_sharded(
        self, part: str = "test", metrics: tuple[str, ...] | list[str] | None = None
    ) -> EvalResult | None:
        """:meth:`evaluate` shared by the ranks (every rank must call it): each ranks its share
        of the queries, rank 0 returns the result (that of :meth:`evaluate`), the others
        ``None`` (:meth:`Evaluator.evaluate_sharded`). One process: :meth:`evaluate`."""
        evaluator = self._evaluator(part, metrics)
        return evaluator.evaluate_sharded(self.model, self.dist.rank, self.dist.world_size)

    def _evaluator(self, part: str, metrics: tuple[str, ...] | list[str] | None) -> Evaluator:
        metrics = metrics or self.config.metrics
        return Evaluator(self.split, part, metrics, self.config.eval_batch_size)

    # ------------------------------------------------------------------ bookkeeping
    def _update_best(self, metrics: dict[str, float]) -> None:
        value = metrics[self.config.valid_metric]
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_evals = value, self.epoch, 0
            self.evals_since_decay = 0
            state = self.model.state_dict()
            self.best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
            best = None if self.run_dir is None else self.run_dir.layout.best_checkpoint
            self._save(best, epoch=self.epoch, state={"best_value": value})
        else:
            self.bad_evals += 1
            self.evals_since_decay += 1
            if self.config.lr_decay < 1 and self.evals_since_decay >= self.config.lr_patience:
                assert self.optimizer is not None  # only trained models are validated per epoch
                self.evals_since_decay = 0
                for group in self.optimizer.param_groups:
                    group["lr"] *= self.config.lr_decay
                lr = self.optimizer.param_groups[0]["lr"]
                log.info("epoch %d: lr decayed to %.3g", self.epoch, lr)

    def _save(
        self,
        path: Path | None,
        epoch: int,
        state: dict[str, Any],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        """Write the checkpoint ``path`` (nothing without a run directory)."""
        if path is not None:
            save_checkpoint(
                path,
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

    def _record(self, record: CurveRecord) -> None:
        record.best_epoch = self.best_epoch
        record.amendments, self._amendments = self._amendments, []
        self.history.append(record)
        if self.run_dir is not None:
            self.run_dir.append_curve(record)
        if self._board is not None:
            self._board.write(record)
        if not self.config.progress:
            log.info(self._summary(record))

    def _summary(self, record: CurveRecord) -> str:
        """One line for ``record``: ``epoch 3/100: loss 0.4123, valid ndcg@20 0.1234 (best
        0.1300 at epoch 2), 1.2 s``."""
        cfg = self.config
        if record.refit:
            head = f"refit epoch {record.refit_epoch}/{self.best_epoch}"
        elif self.model.needs_training:
            head = f"epoch {record.epoch}/{cfg.epochs}"
        else:
            head = "fit"
        parts = [] if record.loss is None else [f"loss {record.loss:.4f}"]
        if record.validated:
            metric = cfg.valid_metric
            best = f"best {self.best_value:.4f} at epoch {record.best_epoch}"
            parts.append(f"valid {metric} {record.valid[metric]:.4f} ({best})")
        seconds = (record.train_s or 0.0) + (record.eval_s or 0.0)
        if record.train_s is not None or record.eval_s is not None:
            parts.append(f"{seconds:.1f} s")
        return f"{head}: {', '.join(parts)}"

    def _state(self) -> dict[str, Any]:
        """The trainer's state for the last checkpoint (with several processes: every rank's
        random generators, gathered on all of them)."""
        ranks_rng = None
        if self.dist.active:
            ranks_rng = distributed.all_gather(rng_states(self.negatives_generator), self.dist)
        return {
            "ranks_rng": ranks_rng,
            "history": [r.model_dump(mode="json") for r in self.history],
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_evals": self.bad_evals,
            "evals_since_decay": self.evals_since_decay,
            "elapsed_s": self.elapsed_s,
            "config": self.config.model_dump(mode="json"),
        }

    def _resume(self, path: Path | None) -> None:
        """Continue from the checkpoint ``path`` (read by rank 0 and sent to every rank; each
        rank restores its own random generators, which the checkpoint holds for every rank)."""
        loaded = self._restore(self._read_checkpoint(path))
        state = loaded["state"]
        self.epoch = loaded["epoch"]
        self.history = [CurveRecord.model_validate(r) for r in state["history"]]
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_state, self.bad_evals = state["best_state"], state["bad_evals"]
        self.evals_since_decay = state["evals_since_decay"]
        self.elapsed_s = state["elapsed_s"]
        log.info("resumed from %s at epoch %d", path, self.epoch)
        self._amend(state["config"])
        if self.config.refit and self._selection_done():
            self._keep_refit_progress()

    def _keep_refit_progress(self) -> None:
        """After a resume that ends the selection: keep the refit's last checkpoint for
        :meth:`refit` and its records in the history, if that refit followed this selection
        (the same last and selected epochs; not the refit of a selection resumed since with
        more epochs)."""
        path = None if self.run_dir is None else self.run_dir.layout.refit_last_checkpoint
        if not distributed.broadcast(path is not None and path.exists(), self.dist):
            return
        payload = self._read_checkpoint(path)
        state = payload["state"]
        if (state["selection_epoch"], state["best_epoch"]) != (self.epoch, self.best_epoch):
            return
        records = [CurveRecord.model_validate(r) for r in state["history"]]
        records = [r for r in records if r.refit]
        self.history.extend(records)
        self._refit_progress = payload
        log.info("the refit continues after its epoch %d", records[-1].refit_epoch)

    def _restore_refit(self) -> int:
        """Restore the refit checkpoint kept on resume (model, optimiser, generators, epoch
        and time); returns how many refit epochs it had trained (0: none kept)."""
        payload, self._refit_progress = self._refit_progress, None
        if payload is None:
            return 0
        loaded = self._restore(payload)
        state = loaded["state"]
        self.epoch, self.elapsed_s = loaded["epoch"], state["elapsed_s"]
        return self.epoch - state["selection_epoch"]

    def _read_checkpoint(self, path: Path | None) -> dict[str, Any]:
        """The checkpoint ``path``, read by rank 0 (which has the run directory) and sent to
        every rank."""
        payload = None
        if self.dist.is_main:
            assert path is not None  # rank 0 has the run directory
            payload = torch.load(path, map_location="cpu", weights_only=False)
        return distributed.broadcast(payload, self.dist)

    def _restore(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Load a checkpoint's model, optimiser and generators (each rank its own);
        returns its ``{"epoch", "state"}``."""
        loaded = restore_checkpoint(
            payload, model=self.model, optimizer=self.optimizer, generator=self.generator
        )
        if self.dist.active:
            ranks_rng = loaded["state"]["ranks_rng"]
            set_rng_states(ranks_rng[self.dist.rank], self.negatives_generator)
        return loaded

    def _amend(self, saved: dict[str, Any]) -> None:
        """Compare the checkpoint's trainer options with this trainer's: refuse a change that
        may not happen on resume, set a changed learning rate or weight decay on the optimizer
        (its restored state holds the old ones) and keep every change for the next record."""
        old = flatten({"train": saved})
        new = flatten({"train": self.config.model_dump(mode="json")})
        changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        changed = [k for k in changed if k not in IGNORED]
        refused = [k for k in changed if k not in AMENDABLE]
        if refused:
            raise RunDirError(
                f"cannot resume from the checkpoint: {refused} changed; only {sorted(AMENDABLE)} "
                "may change on resume"
            )
        for key in changed:
            name = key.removeprefix("train.")
            if name in ("lr", "weight_decay"):
                assert self.optimizer is not None  # resume needs_training only
                for group in self.optimizer.param_groups:
                    group[name] = new[key]
            log.info("resume: %s %r -> %r", key, old.get(key), new.get(key))
            self._amendments.append(Amendment(key=key, old=old.get(key), new=new.get(key)))
