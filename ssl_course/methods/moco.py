r"""MoCo v2: contrastive learning as a look-up in a large, slowly changing dictionary of keys.

He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020; Chen, Fan, Girshick and He, "Improved Baselines with Momentum Contrastive
Learning", 2020 (MoCo v2: MLP head, stronger augmentation, cosine schedule, :math:`\tau = 0.2`).
Official code: facebookresearch/moco.

The algorithm, for a batch of :math:`N` images:

1. draw two random views of every image: :math:`x^q` and :math:`x^k`;
2. the query encoder (backbone + MLP head, trained by SGD) maps :math:`x^q` to queries :math:`q`;
3. the key encoder, a momentum copy of the query encoder that receives no gradient, maps
   :math:`x^k` to keys :math:`k^+` (without building a graph);
4. InfoNCE over :math:`1 + K` candidates: the query's own key :math:`k^+` and the :math:`K` keys
   of earlier batches kept in a queue (:func:`ssl_course.losses.info_nce`);
5. after the optimiser step: move the key encoder towards the query encoder,
   :math:`\theta_k \leftarrow m\,\theta_k + (1-m)\,\theta_q`, and push this batch's keys into the
   queue, dropping the oldest.

The queue decouples the number of negatives from the batch size; the momentum makes the keys in
the queue come from nearly the same encoder, so they stay comparable with the current queries.

Checkpoints: the key encoder's weights, the queue ``[K, D]`` and its pointer are parameters and
buffers of this module, so ``state_dict()`` holds them and a resumed run continues exactly. The
queue may be any size: writing wraps around its end, so unlike the official code ``K`` need not
be a multiple of the batch size.

Recipe: MoCo v2's optimisation (facebookresearch/moco ``main_moco.py`` with ``--mlp --moco-t 0.2
--aug-plus --cos``: SGD, momentum 0.9, no Nesterov, lr 0.03 per 256 images, weight decay 1e-4,
cosine decay; MLP head, :math:`\tau = 0.2`) with the CIFAR-scale dictionary of the official CIFAR
demo (``colab/moco_cifar10_demo.ipynb``: :math:`K = 4096`, :math:`m = 0.99`, split BN in 8 groups).
The demo's own learning rate, 0.06, is for a batch of 512, i.e. the same 0.03 per 256 images.
Every difference is listed in ``docs/RECIPES.md``.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ssl_course import distributed
from ssl_course.data.augment import contrastive_augment
from ssl_course.losses import info_nce
from ssl_course.models import mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput
from .simclr import _positive_float, _positive_int


class SplitBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are computed separately on ``num_splits`` groups.

    In training mode the batch is divided into ``num_splits`` groups (sample ``i`` goes to group
    ``i % num_splits``) and every group is normalised with its own mean and variance, exactly as
    if each group had been on its own GPU. The running statistics become the average over the
    groups. In eval mode it is an ordinary batch norm, and its ``state_dict`` has the same keys as
    ``nn.BatchNorm1d/2d``. Works for ``[N, C]`` and ``[N, C, H, W]`` inputs; a batch that does
    not divide into groups of at least two samples is normalised as a whole.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = _positive_int("num_splits", num_splits)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"SplitBatchNorm expects [N, C] or [N, C, H, W] inputs, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        groups = self.num_splits
        n, c = x.shape[0], x.shape[1]
        if not self.training or groups == 1 or n % groups != 0 or n // groups < 2:
            return super().forward(x)
        factor = 0.0
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # [N, C, ...] -> [N/G, G*C, ...]: channel block g holds the samples n with n % G == g, so one
        # ordinary batch-norm call normalises each group with its own statistics.
        grouped = x.reshape(n // groups, groups * c, *x.shape[2:])
        mean = self.running_mean.repeat(groups) if self.track_running_stats else None
        var = self.running_var.repeat(groups) if self.track_running_stats else None
        weight = self.weight.repeat(groups) if self.affine else None
        bias = self.bias.repeat(groups) if self.affine else None
        out = F.batch_norm(grouped, mean, var, weight, bias, True, factor, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(mean.view(groups, c).mean(0))
                self.running_var.copy_(var.view(groups, c).mean(0))
        return out.reshape(x.shape)


def use_split_batch_norm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every ``BatchNorm1d/2d`` inside ``module`` by a :class:`SplitBatchNorm` (in place).

    Weights and running statistics are kept; the state-dict keys do not change. Returns ``module``.
    """
    for child_name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)) and not isinstance(child, SplitBatchNorm):
            split = SplitBatchNorm(child.num_features, num_splits, eps=child.eps, momentum=child.momentum,
                                   affine=child.affine, track_running_stats=child.track_running_stats)
            first = next(iter(child.state_dict().values()), None)
            if first is not None:
                split.to(first.device)
            split.load_state_dict(child.state_dict())
            split.train(child.training)
            setattr(module, child_name, split)
        else:
            use_split_batch_norm(child, num_splits)
    return module


@register
class MoCo(Method):
    """MoCo v2: query encoder + momentum key encoder + a queue of ``queue_size`` negative keys.

    Args:
        backbone: any course backbone (exposes ``feature_dim``); the query encoder's backbone.
        num_classes: number of classes (evaluation only; MoCo never reads a label).
        temperature: :math:`\\tau` of InfoNCE (0.2, MoCo v2).
        momentum: :math:`m` of the key encoder update (0.99: the MoCo CIFAR demo's value; the
            ImageNet papers use 0.999 with ~5000 steps per epoch, too slow for short CIFAR runs).
        queue_size: :math:`K`, the number of negative keys (4096, as in the CIFAR demo).
        proj_hidden_dim, proj_dim: the 2-layer MLP head (512 → 128).
        symmetric: also use view 2 as query and view 1 as key, and average the two losses (the
            CIFAR demo's option; it *sums* them, a factor 2 that only rescales the learning rate).
            ``False`` is the MoCo v2 paper.
        bn_splits: number of groups for the single-device stand-in of shuffle BN (see below);
            1 switches it off (plain batch norm over the whole batch).

    **Why shuffle BN exists.** Batch norm mixes information between the samples of a batch. If a
    query and its positive key are normalised with the statistics of the *same* batch, while the
    queued negatives were normalised with other batches' statistics, the network can pick the
    positive out by its batch statistics instead of its content: the loss drops, the features
    do not improve ("BN cheating", MoCo paper §3.3). The official code computes BN per GPU and
    shuffles the key batch across GPUs, so a query and its key are normalised by different
    sub-batches. **What we do on one device** (as the official CIFAR demo does): every BN layer of
    both encoders becomes a :class:`SplitBatchNorm` with ``bn_splits`` groups ("virtual GPUs"),
    and the key batch is shuffled before the key encoder and unshuffled after it. The batch size
    must then be a multiple of ``bn_splits`` (a ``ValueError`` says so otherwise).
    """

    name = "moco"
    data_sources = ("all",)          # self-supervised on every training image, labels unused
    default_optimizer = "sgd"        # MoCo v2 (main_moco.py): SGD, momentum 0.9, no Nesterov
    default_nesterov = False
    default_lr = 0.03                # per 256 images (the engine scales it): MoCo v2's 0.03 at batch 256,
                                     # the same per image as the CIFAR demo's 0.06 at batch 512
    default_weight_decay = 1e-4      # MoCo v2 (the CIFAR demo: 5e-4)
    default_batch_size = 256

    def __init__(self, backbone: nn.Module, num_classes: int, temperature: float = 0.2, momentum: float = 0.99,
                 queue_size: int = 4096, proj_hidden_dim: int = 512, proj_dim: int = 128,
                 symmetric: bool = False, bn_splits: int = 8) -> None:
        super().__init__(backbone, num_classes)
        self.temperature = _positive_float("temperature", temperature)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.queue_size = _positive_int("queue_size", queue_size)
        self.proj_hidden_dim = _positive_int("proj_hidden_dim", proj_hidden_dim)
        self.proj_dim = _positive_int("proj_dim", proj_dim)
        if not isinstance(symmetric, bool):
            raise ValueError(f"symmetric must be True or False, got {symmetric!r}")
        self.symmetric = symmetric
        self.bn_splits = _positive_int("bn_splits", bn_splits)

        # 1. the query encoder: backbone + MLP head, trained by the optimiser
        self.projector = mlp_head(backbone.feature_dim, self.proj_hidden_dim, self.proj_dim, num_layers=2)
        if self.bn_splits > 1:
            use_split_batch_norm(self.backbone, self.bn_splits)
            use_split_batch_norm(self.projector, self.bn_splits)
        # 2. the key encoder: a copy that only moves by the momentum update (no gradient)
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_projector = copy.deepcopy(self.projector)
        for parameter in self.key_parameters():
            parameter.requires_grad_(False)
        # 3. the queue of keys: random unit vectors to start with, overwritten after K/N steps
        self.register_buffer("queue", F.normalize(torch.randn(self.queue_size, self.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self._pending_keys: torch.Tensor | None = None

    # --- the two encoders --------------------------------------------------------------------
    def query_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.projector.parameters()]

    def key_parameters(self) -> list[nn.Parameter]:
        return [*self.key_backbone.parameters(), *self.key_projector.parameters()]

    def encode_query(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images → queries ``[B, proj_dim]`` (not L2-normalised)."""
        return self.projector(self.backbone(images))

    @torch.no_grad()
    def encode_key(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised float images → L2-normalised keys ``[B, proj_dim]``, no graph.

        With ``bn_splits > 1`` the batch is shuffled before the key encoder and unshuffled after
        it, so key ``i`` is normalised with another group of samples than query ``i``.
        """
        if self.bn_splits > 1:
            order = torch.randperm(images.shape[0], generator=generator, device=images.device)
            shuffled = self.key_projector(self.key_backbone(images[order]))
            keys = torch.empty_like(shuffled)
            keys[order] = shuffled                       # unshuffle: row order[j] gets output j
        else:
            keys = self.key_projector(self.key_backbone(images))
        return F.normalize(keys.float(), dim=1)

    # --- one step ----------------------------------------------------------------------------
    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        images = batch.unlabeled_images
        if images is None or images.shape[0] < 1:
            raise ValueError("MoCo needs images in batch.unlabeled_images")
        if self.bn_splits > 1 and (images.shape[0] % self.bn_splits or images.shape[0] // self.bn_splits < 2):
            raise ValueError(f"with bn_splits={self.bn_splits} the batch size must be a multiple of "
                             f"{self.bn_splits} with at least 2 images per group, got {images.shape[0]}; "
                             "change the batch size or pass bn_splits=1 (plain batch norm)")
        # 1. two random views of every image
        view1 = contrastive_augment(images, generator=batch.generator)
        view2 = contrastive_augment(images, generator=batch.generator)
        # 2. queries from the query encoder (graph kept)
        q1 = self.encode_query(view1)
        # 3. positive keys from the momentum encoder (no graph)
        k2 = self.encode_key(view2, batch.generator)
        queue = self.queue           # enqueueing waits for after_optimizer_step, when backward is done
        # 4. InfoNCE: (1 + K)-way classification, the positive key is the right answer
        with torch.autocast(images.device.type, enabled=False):
            loss = info_nce(q1.float(), k2, queue, self.temperature)
            accuracy = _positive_wins(q1.detach().float(), k2, queue)
        keys = k2
        if self.symmetric:
            q2 = self.encode_query(view2)
            k1 = self.encode_key(view1, batch.generator)
            with torch.autocast(images.device.type, enabled=False):
                loss = 0.5 * (loss + info_nce(q2.float(), k1, queue, self.temperature))
                accuracy = 0.5 * (accuracy + _positive_wins(q2.detach().float(), k1, queue))
            keys = torch.cat([k2, k1])
        # 5. (after the optimiser step) momentum update and enqueue: see after_optimizer_step
        self._pending_keys = keys
        return StepOutput(loss, {"pos_top1": accuracy})

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        self.momentum_update()
        if self._pending_keys is not None:
            # under torchrun, the keys of every process join the (shared, identical) queue
            self.enqueue(distributed.gather(self._pending_keys))
            self._pending_keys = None

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``key ← m·key + (1-m)·query`` for every parameter (buffers such as BN running
        statistics are not averaged: the key encoder's own forward passes update them)."""
        for key, query in zip(self.key_parameters(), self.query_parameters()):
            key.lerp_(query.detach(), 1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys [N, D]`` (L2-normalised here) over the oldest queue rows, wrapping around.

        The pointer stays on the device (no host synchronisation). With ``N > K`` only the last
        ``K`` keys are kept, as if they had been enqueued one by one. Same result as the pure
        function :func:`ssl_course.losses.update_queue`.
        """
        keys = F.normalize(keys.detach().to(self.queue.dtype), dim=1)
        size, n = self.queue_size, keys.shape[0]
        start = self.queue_ptr
        if n > size:
            keys, start = keys[-size:], (start + n - size) % size
        positions = (start + torch.arange(keys.shape[0], device=self.queue.device)) % size
        self.queue[positions] = keys
        self.queue_ptr.copy_((self.queue_ptr + n) % size)


@torch.no_grad()
def _positive_wins(queries: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
    """Fraction of queries whose own key is more similar than every queued key (MoCo's "acc@1")."""
    queries = F.normalize(queries, dim=1)
    positive = (queries * keys).sum(1)
    hardest_negative = (queries @ queue.T).amax(1)
    return (positive > hardest_negative).float().mean()
