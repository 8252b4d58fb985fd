"""Training on DGL's distributed engine (DistDGL): ``train.distributed: dist_dgl``.

For graphs that do not fit one machine, DGL keeps the graph in partitions, each served by
graph servers on its machine, and trainers on every machine sample neighbourhoods from all of
them. tgraph plugs its LightGCN and NGCF into that engine behind the usual ``tgraph run``:

1. ``tgraph partition --config X --parts N --out DIR`` writes the training graph of the
   config's split in ``N`` partitions (:mod:`tgraph.graph.partition`) and copies nothing else:
   ``DIR`` goes to every machine (a shared file system, or a copy).
2. On every machine, graph servers and trainers run the same ``tgraph run --config X
   train.distributed=dist_dgl``, told their role by DGL's own environment variables (those
   DGL's ``tools/launch.py`` sets; :func:`server_env` and :func:`trainer_env` build them):
   ``DGL_ROLE=server`` processes serve their partition and exit when the trainers are done;
   trainers join a torch process group (gloo; ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
   ``MASTER_PORT`` as torchrun sets them; one trainer alone gets a one-process group, which
   DGL's distributed SparseAdam needs) and train.

A trainer (:class:`DistDGLTrainer`) is a :class:`~tgraph.train.trainer.Trainer` whose
gradient step runs on the engine: each rank takes its shard of every epoch's training events
(as with ``--nproc``), samples the ``K``-hop neighbourhood of the batch's users, positives and
negatives from the :class:`~dgl.distributed.DistGraph` (``dgl.dataloading.NeighborSampler``,
``fanouts`` per layer, full neighbourhoods by default), reads their layer-0 rows from a
:class:`~dgl.distributed.DistEmbedding` (partitioned like the nodes, with an explicit
``part_policy``) and propagates the model over the sampled blocks (:class:`BlockEncoder`,
:func:`block_loss`); the distributed :class:`~dgl.distributed.optim.SparseAdam` updates the
rows on the servers, and the dense layers (NGCF's) are trained by the run's optimiser with
their gradients averaged across trainers by DDP. With full fanouts the loss and gradients are
exactly the one-process model's on the batch (tested). Every epoch the trainers read the
whole table back into their local model, so the trainers validate and, after selection, test
together as DDP ranks do (each ranks a share of the queries, rank 0 gathers and writes); after
training the trainers' parameters (table copy and dense
layers) are compared as DDP replicas are.

Supported: ``lightgcn`` and ``ngcf`` with a sampled loss (``bpr`` / ``sampled_softmax``).
Not supported (a ``ConfigError``): other models, the full ``ce`` loss, ``refit``,
``fold_valid``, ``--resume`` (the optimiser state lives on the servers), ``weight_decay``
(the models' ``reg_weight`` is their L2). Every trainer holds every embedding and its own
copy of the training graph for evaluation: the engine spreads the training graph's sampling
and the embedding table's updates, not the evaluation's memory.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dgl
import dgl.function as fn
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from tgraph.errors import ConfigError
from tgraph.graph.partition import read_partition
from tgraph.models.base import Batch, scored_items
from tgraph.models.bprmf import l2_rows
from tgraph.models.lightgcn import LightGCN
from tgraph.models.losses import loss_from_scores
from tgraph.models.ngcf import NGCF
from tgraph.train import distributed
from tgraph.train.trainer import Trainer

log = logging.getLogger(__name__)

#: the environment variables DGL's launcher gives every process (see :func:`server_env`)
ROLE, IP_CONFIG, PART_CONFIG = "DGL_ROLE", "DGL_IP_CONFIG", "DGL_CONF_PATH"
EMBEDDING_NAME = "tgraph_embedding"
#: runs trained in this process: each run's table (and its optimiser state) has its own name
_RUNS = itertools.count()


def zeros(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """The servers' initialisation of the embedding table (importable by the servers: DGL
    sends its name). Rank 0 then writes the model's seeded layer-0 rows over it."""
    return torch.zeros(shape, dtype=dtype)


def write_ip_config(path: str | Path, addresses: list[str], port: int) -> Path:
    """DGL's ``ip_config`` file: one ``address port`` line per machine (its servers listen
    on ``port``, ``port + 1``, ...)."""
    path = Path(path)
    path.write_text("".join(f"{address} {port}\n" for address in addresses))
    return path


def server_env(
    *,
    server_id: int,
    ip_config: str | Path,
    part_config: str | Path,
    n_servers: int,
    n_trainers: int,
) -> dict[str, str]:
    """The environment of graph server ``server_id`` (machine ``server_id // n_servers``);
    ``n_servers`` per machine, ``n_trainers`` in all (every machine's)."""
    return {
        ROLE: "server",
        "DGL_SERVER_ID": str(server_id),
        IP_CONFIG: str(ip_config),
        PART_CONFIG: str(part_config),
        "DGL_NUM_SERVER": str(n_servers),
        "DGL_NUM_CLIENT": str(n_trainers),
        "DGL_NUM_SAMPLER": "0",
        "DGL_GRAPH_FORMAT": "csc",
    }


def trainer_env(
    *,
    rank: int,
    world_size: int,
    ip_config: str | Path,
    part_config: str | Path,
    n_servers: int,
    master_addr: str,
    master_port: int,
    local_rank: int = 0,
) -> dict[str, str]:
    """The environment of trainer ``rank`` of ``world_size`` (``n_servers`` servers per
    machine; the torch process group meets at ``master_addr:master_port``)."""
    env = {
        ROLE: "client",
        "DGL_DIST_MODE": "distributed",
        IP_CONFIG: str(ip_config),
        PART_CONFIG: str(part_config),
        "DGL_NUM_SERVER": str(n_servers),
        "DGL_NUM_SAMPLER": "0",
        "DGL_GRAPH_FORMAT": "csc",
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local_rank),
    }
    return env


def _environment(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"train.distributed: dist_dgl needs {name} in the environment (set by DGL's "
            "launcher, or tgraph.train.dist_dgl.server_env / trainer_env)",
            key="train.distributed",
            fix="start graph servers and trainers as docs/scale.md shows",
        )
    return value


def initialize() -> None:
    """Join DGL's engine in the role the environment gives: a graph server serves its
    partition and exits the process when the trainers leave; a trainer connects to every
    server and joins the torch process group (its own one-process group when not launched
    with several)."""
    ip_config = _environment(IP_CONFIG)
    _environment(PART_CONFIG)
    if os.environ.get(ROLE) == "server":
        log.info("graph server %s", os.environ.get("DGL_SERVER_ID"))
    dgl.distributed.initialize(ip_config)  # a server never returns from it
    if not distributed.launched() and not dist.is_initialized():
        # the distributed SparseAdam needs a process group even with one trainer
        port = distributed.free_port()
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


# ---------------------------------------------------------------------- the model on blocks
def block_propagate(
    blocks: list[dgl.DGLGraph], feat: Tensor, degrees: Tensor
) -> tuple[Tensor, Tensor]:
    r"""LightGCN over sampled ``blocks`` (outermost first): ``feat`` ``[S, d]`` the layer-0
    rows of the first block's sources, ``degrees`` ``[S]`` their full degrees. Layer ``k+1``
    of an output node ``v`` is :math:`\frac{d_v}{s_v} \sum_{u \in N_s(v)} d_u^{-1/2} d_v^{-1/2}
    h_u^{(k)}` over its ``s_v`` sampled neighbours (exactly LightGCN's with full fanouts,
    unbiased otherwise). Returns the layer mean and the layer-0 rows of the last block's
    destinations (every block's destinations are the first rows of its sources)."""
    norm = degrees.clamp(min=1).rsqrt().unsqueeze(1)
    h = feat
    n_out = blocks[-1].num_dst_nodes() if blocks else len(feat)
    layers = [feat[:n_out]]
    for block in blocks:
        n_src, n_dst = block.num_src_nodes(), block.num_dst_nodes()
        with block.local_scope():
            block.srcdata["h"] = h[:n_src] * norm[:n_src]
            block.update_all(fn.copy_u("h", "m"), fn.sum("m", "h"))
            sampled = block.in_degrees().to(feat.dtype).clamp(min=1).unsqueeze(1)
            scale = degrees[:n_dst].unsqueeze(1) / sampled
            h = block.dstdata["h"] * norm[:n_dst] * scale
        layers.append(h[:n_out])
    return torch.stack(layers).mean(0), feat[:n_out]


def ngcf_block_propagate(
    convs: nn.ModuleList, blocks: list[dgl.DGLGraph], feat: Tensor, degrees: Tensor
) -> tuple[Tensor, Tensor]:
    r"""NGCF (:class:`~tgraph.nn.NGCFConv` ``convs``, one per block) over sampled ``blocks``:
    the message :math:`m_v` is :func:`block_propagate`'s (rescaled neighbour sum), then
    :math:`h_v' = \mathrm{Dropout}(\mathrm{LeakyReLU}(W_1 (h_v + m_v) + W_2 (m_v \odot h_v)
    + b))`. Returns the concatenation of the layer-0 rows and every layer's L2-normalised
    output for the last block's destinations, and their layer-0 rows."""
    norm = degrees.clamp(min=1).rsqrt().unsqueeze(1)
    h = feat
    n_out = blocks[-1].num_dst_nodes() if blocks else len(feat)
    outputs = [feat[:n_out]]
    for conv, block in zip(convs, blocks):
        n_src, n_dst = block.num_src_nodes(), block.num_dst_nodes()
        with block.local_scope():
            block.srcdata["h"] = h[:n_src] * norm[:n_src]
            block.update_all(fn.copy_u("h", "m"), fn.sum("m", "m"))
            sampled = block.in_degrees().to(feat.dtype).clamp(min=1).unsqueeze(1)
            message = block.dstdata["m"] * norm[:n_dst] * degrees[:n_dst].unsqueeze(1) / sampled
        own = h[:n_dst]
        out = conv.W1(own + message) + conv.W2(message * own)
        h = conv.dropout(F.leaky_relu(out, conv.negative_slope))
        outputs.append(F.normalize(h[:n_out], dim=1))
    return torch.cat(outputs, dim=1), feat[:n_out]


class BlockEncoder(nn.Module):
    """The model's propagation over sampled blocks: ``forward(blocks, feat, degrees)`` ->
    (final rows, layer-0 rows) of the last block's destinations. Holds the model's dense
    layers (NGCF's; LightGCN has none), so that DDP can wrap it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.convs = getattr(model, "layers", None)

    def forward(
        self, blocks: list[dgl.DGLGraph], feat: Tensor, degrees: Tensor
    ) -> tuple[Tensor, Tensor]:
        if self.convs is None:
            return block_propagate(blocks, feat, degrees)
        return ngcf_block_propagate(self.convs, blocks, feat, degrees)


def block_loss(
    graph: Any,
    sampler: dgl.dataloading.NeighborSampler | None,
    lookup: Callable[[Tensor], Tensor],
    degree: Callable[[Tensor], Tensor],
    ids: Tensor,
    batch: Batch,
    n_users: int,
    loss: str,
    reg_weight: float,
    encoder: Callable[..., tuple[Tensor, Tensor]] = block_propagate,
) -> Tensor:
    """The training loss of ``batch`` (``loss`` on its positive and negatives plus
    ``reg_weight`` times the L2 of their layer-0 rows), propagated over blocks sampled from
    ``graph`` (a ``DGLGraph`` or ``DistGraph``; ``sampler`` ``None``: no layer).
    ``lookup(nodes)`` returns layer-0 rows and ``degree(nodes)`` full degrees of graph nodes;
    ``ids[tgraph node]`` is its graph node id (users first, then items); ``encoder(blocks,
    rows, degrees)`` propagates (LightGCN's :func:`block_propagate` by default)."""
    users, pos = batch.queries.user, batch.pos_item
    items = scored_items(batch, loss)  # type: ignore[arg-type]
    if items is None:
        raise ConfigError("dist_dgl trains sampled losses only", key="loss", fix="bpr")
    n = len(users)
    wanted = ids[torch.cat([users, items.flatten() + n_users])]
    seeds, inverse = torch.unique(wanted, return_inverse=True)
    if sampler is None:
        input_nodes, blocks = seeds, []
    else:
        input_nodes, _, blocks = sampler.sample(graph, seeds)
    final, ego = encoder(blocks, lookup(input_nodes), degree(input_nodes))
    query, item = final[inverse[:n]], final[inverse[n:]].view(n, items.shape[1], -1)
    scores = torch.einsum("bd,bkd->bk", query, item)
    ego_items = ego[inverse[n:]].view(n, items.shape[1], -1)
    neg = ego_items[:, 1:].reshape(-1, ego.shape[1]) if items.shape[1] > 1 else None
    reg = l2_rows(reg_weight, ego[inverse[:n]], ego_items[:, 0], neg)
    return loss_from_scores(loss, scores, pos) + reg  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the trainer
class DistDGLTrainer(Trainer):
    """A :class:`~tgraph.train.trainer.Trainer` whose steps run on DGL's engine (see the
    module docstring); built by :func:`tgraph.train.recipe.build_trainer` when
    ``train.distributed`` is ``dist_dgl``, in a trainer process of a running engine."""

    def __init__(self, model: Any, split: Any, config: Any = None, **kwargs: Any) -> None:
        super().__init__(model, split, config, **kwargs)
        self._check_supported()
        assert self.config.distributed is not None  # checked by the recipe
        part_config = _environment(PART_CONFIG)
        meta, ids = read_partition(part_config)
        self._check_partition(meta)
        self.ids = torch.from_numpy(ids)
        self.graph = dgl.distributed.DistGraph(meta["graph_name"], part_config=part_config)
        n_nodes, dim = self.model.embedding.weight.shape
        self.embedding = dgl.distributed.DistEmbedding(
            n_nodes,
            dim,
            name=f"{EMBEDDING_NAME}{next(_RUNS)}",  # alike on every trainer: same plan
            init_func=zeros,
            # explicit: with no node type to tell it, DGL guesses the policy from the count
            part_policy=self.graph.get_node_partition_policy("_N"),
        )
        if self.dist.is_main:  # the seeded initialisation of the one-process model
            self.embedding.weight[self.ids] = self.model.embedding.weight.detach().cpu()
        self.graph.barrier()
        self.sparse_optimizer = dgl.distributed.optim.SparseAdam(
            [self.embedding], lr=self.config.lr
        )
        assert isinstance(self.model.config, LightGCN.Config | NGCF.Config)  # checked above
        self.model_config: LightGCN.Config | NGCF.Config = self.model.config
        n_layers = self.model_config.n_layers
        fanouts = self.config.distributed.fanouts or [-1] * n_layers
        if len(fanouts) != n_layers:
            raise ConfigError(
                f"{len(fanouts)} fanouts for {n_layers} layers",
                key="train.distributed.fanouts",
                fix=f"one per layer ({n_layers}), or leave it out (full neighbourhoods)",
            )
        self.block_sampler = dgl.dataloading.NeighborSampler(fanouts) if n_layers else None
        self.encoder: nn.Module = BlockEncoder(self.model)
        self.dense = any(True for _ in self.encoder.parameters())
        if self.dense and self.dist.active:  # dense gradients averaged across trainers
            self.encoder = distributed.wrap_module(self.encoder, self.device)

    def _check_supported(self) -> None:
        cfg, model = self.config, self.model
        problems = []
        if not isinstance(model, LightGCN | NGCF):
            problems.append(f"model {type(model).__name__} (supported: lightgcn, ngcf)")
        elif model.config.loss == "ce":
            problems.append("loss 'ce' (supported: bpr, sampled_softmax)")
        if cfg.refit:
            problems.append("train.refit")
        if cfg.fold_valid:
            problems.append("train.fold_valid")
        if cfg.weight_decay:
            problems.append("train.weight_decay (use the model's reg_weight)")
        if problems:
            raise ConfigError(
                "train.distributed: dist_dgl does not support " + ", ".join(problems),
                key="train.distributed",
                fix="lightgcn or ngcf with a sampled loss, without refit, fold_valid or "
                "weight_decay",
            )

    def _check_partition(self, meta: dict[str, Any]) -> None:
        import json

        summary = json.loads(json.dumps(self.split.summary(), default=str))
        if (meta["n_users"], meta["n_items"]) != (self.split.n_users, self.split.n_items) or (
            meta["split"] != summary
        ):
            raise ConfigError(
                "the partitions were written from another split than this run's",
                key="train.distributed",
                fix="tgraph partition with this config, and point DGL_CONF_PATH at it",
            )

    def fit(self, resume: bool = False, on_epoch: Any = None) -> Any:
        if resume:
            raise ConfigError(
                "--resume with dist_dgl: the optimiser state lives on the graph servers",
                key="train.distributed",
                fix="start the run afresh",
            )
        return super().fit(False, on_epoch)

    def train_epoch(self, max_batches: int | None = None) -> float:
        cfg = self.config
        assert self._samples is not None and self.optimizer is not None
        self.sparse_optimizer._lr = self.optimizer.param_groups[0]["lr"]  # reduce-on-plateau
        queries, positives = self._samples
        order = self._epoch_order(max_batches)
        model = self.model
        model.train()
        total, batches = 0.0, 0
        for lo in range(0, len(order), self._batch):
            index = torch.from_numpy(order[lo : lo + self._batch])
            users, pos = queries.user[index], positives[index]
            assert self.sampler is not None  # sampled losses only
            neg = torch.from_numpy(
                self.sampler.sample(users.numpy(), pos.numpy(), cfg.n_neg, self.negatives_generator)
            )
            loss = block_loss(
                self.graph,
                self.block_sampler,
                self.embedding,
                lambda nodes: self.graph.ndata["deg"][nodes],
                self.ids,
                Batch(queries[index], pos, neg),
                model.n_users,
                self.model_config.loss,
                self.model_config.reg_weight,
                self.encoder,
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the dense gradients here
            self.sparse_optimizer.step()
            if self.dense:
                self.optimizer.step()  # the local embedding copy has no gradient: untouched
            total += float(loss.detach())
            batches += 1
        self._pull()
        return total / max(batches, 1)

    def _pull(self) -> None:
        """The servers' embedding table into the local model (every rank: the replicas are
        compared after training)."""
        rows = self.embedding.weight[self.ids]
        with torch.no_grad():
            self.model.embedding.weight.copy_(rows.to(self.model.embedding.weight.device))
        self.model.train()  # drops a cached propagation
