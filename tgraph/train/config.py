"""Trainer options: a typed, validated section (``train`` in an experiment config).

The seed, the device and where checkpoints and curves go are not trainer options: they belong
to the run (``seeds``, ``device`` and the run directory) and are given to the trainer by
:func:`tgraph.train.recipe.train_one`.
"""

from __future__ import annotations

import importlib.util
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from tgraph.config import StrictModel
from tgraph.eval.metrics import parse


def _metric_name(name: str) -> str:
    try:
        parse(name)
    except (KeyError, ValueError) as error:
        raise ValueError(str(error).strip("\"'")) from None
    return name.lower()


MetricName = Annotated[str, AfterValidator(_metric_name)]
PositiveInt = Annotated[int, Field(ge=1)]


def _fanout(value: int) -> int:
    if value == 0 or value < -1:
        raise ValueError(f"a fanout is a positive number of neighbours or -1 (all), got {value}")
    return value


#: options added after runs were fingerprinted, and their unset values: left out of a dump
#: while unset, so that fingerprints of runs without them stay those of before they existed
UNSET_OMITTED: dict[str, object] = {
    "distributed": None,
    "sampling": None,
    "fold_valid": False,
    "epoch_sampling": "events",
    "max_target_gap_hours": None,
}


class DistributedConfig(StrictModel):
    """``train.distributed``: the engine that trains beyond one process (``dist_dgl``: see
    :mod:`tgraph.train.dist_dgl`). The string ``dist_dgl`` alone is this with its defaults."""

    engine: Literal["dist_dgl"] = "dist_dgl"
    #: neighbours sampled per node and layer, outermost first (-1: all); default all
    fanouts: list[Annotated[int, AfterValidator(_fanout)]] | None = None


class SamplingConfig(StrictModel):
    """Neighbour-sampled mini-batch training (``train.sampling``; see
    :mod:`tgraph.graph.sampling` and the Scale page of the docs).

    Every training batch propagates over sampled blocks around its users and items instead
    of the whole graph; evaluation propagates the whole graph layer by layer in chunks of
    ``inference_chunk`` destination nodes.
    """

    #: in-neighbours sampled per node and layer, the layer next to the input first; one per
    #: propagation layer of the model; -1 takes all (full fanout = full-graph training)
    fanouts: Annotated[list[Annotated[int, AfterValidator(_fanout)]], Field(min_length=1)]
    #: sample with replacement
    replace: bool = False
    #: destination nodes per block in layer-wise full-graph inference (evaluation)
    inference_chunk: PositiveInt = 65536
    #: sparse gradients for the embedding table and a lazy Adam
    #: (:class:`~tgraph.train.lazy_adam.LazyAdam`): a step updates only the rows the batch's
    #: blocks read, so its cost does not grow with the table (lightgcn, ngcf)
    sparse: bool = False

    @model_serializer(mode="wrap")
    def _without_default_sparse(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict:
        """No ``sparse`` key when it is off: fingerprints of sampled runs from before the
        option existed stay the same."""
        data = handler(self)
        if data.get("sparse") is False:
            del data["sparse"]
        return data


class TrainConfig(StrictModel):
    """Trainer options (model hyper-parameters live in the model's ``Config``)."""

    epochs: PositiveInt = 100
    batch_size: PositiveInt = 2048
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    optimizer: Literal["adam", "sgd"] = "adam"
    #: negatives per positive (ignored by the full "ce" loss)
    n_neg: PositiveInt = 1
    negatives: Literal["uniform", "popularity", "spatial"] = "uniform"
    neg_exclude_history: bool = False
    #: popularity exponent
    neg_alpha: Annotated[float, Field(ge=0)] = 0.75
    #: spatial neighbourhood size
    neg_k: PositiveInt = 50
    #: what one epoch draws: ``events``, every training event once in a shuffled order;
    #: ``users``, as many samples as events, each a uniformly drawn user's uniformly drawn
    #: training event (LightGCN's official sampler: every user weighs the same in training, as
    #: in the per-user metrics, instead of in proportion to their events)
    epoch_sampling: Literal["events", "users"] = "events"
    #: sequence models: skip training targets with a shorter history
    min_history: Annotated[int, Field(ge=0)] = 0
    #: next-POI: train only on targets at most this many hours after their user's previous
    #: training event, the continuations of a trajectory (what ``last_of_trajectory``
    #: protocols test, and all STHGCN and GETNext train on); None: every training event
    max_target_gap_hours: Annotated[float, Field(gt=0)] | None = None
    # a tuple from Python code is fine too
    metrics: Annotated[list[MetricName], Field(min_length=1, strict=False)] = Field(
        default_factory=lambda: ["recall@20", "ndcg@20"]
    )
    valid_metric: MetricName = "ndcg@20"
    eval_every: PositiveInt = 1
    #: evaluations without improvement before stopping
    patience: PositiveInt = 10
    #: reduce-on-plateau factor (1.0: constant learning rate)
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 1.0
    #: evaluations without improvement before each decay
    lr_patience: PositiveInt = 2
    #: wall-clock limit on training + validation (seconds)
    time_budget_s: Annotated[float, Field(ge=0)] | None = None
    #: after selection, retrain from scratch on train + valid
    refit: bool = False
    #: after selection, fold the validation events into the model before test (no gradient
    #: step), so that test sees a model holding every event before the test period as
    #: validation saw one holding every event before the validation period (trainer docstring)
    fold_valid: bool = False
    eval_batch_size: PositiveInt = 1024
    #: tqdm bars; without them, one log line per epoch (loss, validation metric, seconds)
    progress: bool = True
    #: per-epoch curves also to ``<run_dir>/tensorboard/`` (the optional extra ``tensorboard``)
    tensorboard: bool = False
    #: neighbour-sampled training (None: full-graph propagation at every step)
    sampling: SamplingConfig | None = None
    #: train on another engine (``dist_dgl``); none: this process (or ``--nproc``'s DDP)
    distributed: DistributedConfig | None = None

    @field_validator("distributed", mode="before")
    @classmethod
    def _engine_name(cls, value: object) -> object:
        return {"engine": value} if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _without_unset_engine(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict:
        """No key for an option of :data:`UNSET_OMITTED` left unset."""
        data = handler(self)
        for key, unset in UNSET_OMITTED.items():
            if key in data and data[key] is unset:
                del data[key]
        return data

    @field_validator("tensorboard")
    @classmethod
    def _tensorboard_installed(cls, value: bool) -> bool:
        # checked here, so that a config asking for it fails before any training
        if value and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "TensorBoard is not installed: it is the optional extra 'tensorboard' "
                "(fix: pip install 'tgraph[tensorboard]', or set train.tensorboard: false)"
            )
        return value

    @model_validator(mode="after")
    def _sparse_needs_lazy_adam(self) -> TrainConfig:
        if self.sampling is None or not self.sampling.sparse:
            return self
        if self.optimizer != "adam":
            raise ValueError(
                f"train.sampling.sparse trains with a lazy Adam, not optimizer "
                f"{self.optimizer!r} (fix: set train.optimizer: adam, or sparse: false)"
            )
        if self.weight_decay > 0:
            raise ValueError(
                "train.sampling.sparse has no weight decay: it would touch every row at every "
                "step (fix: set train.weight_decay: 0 and use the model's reg_weight, which "
                "regularises the batch's rows)"
            )
        return self

    @model_validator(mode="after")
    def _refit_or_fold(self) -> TrainConfig:
        if self.refit and self.fold_valid:
            raise ValueError(
                "train.refit and train.fold_valid both put the validation events into the model "
                "before test (fix: set one of them to false)"
            )
        return self

    @model_validator(mode="after")
    def _valid_metric_is_computed(self) -> TrainConfig:
        """The selection metric is always among the computed validation metrics."""
        if self.valid_metric not in self.metrics:
            self.metrics = [*self.metrics, self.valid_metric]
        return self
