r"""FixMatch (Sohn et al., NeurIPS 2020): confident pseudo-labels from a weak view teach a strong view.

Algorithm box (per step), following ``google-research/fixmatch`` (``fixmatch.py``) and the
PyTorch port ``kekmodel/FixMatch-pytorch`` (``train.py``):

1. a weak view (pad-crop + flip) of each of the :math:`B` labelled images; a weak and a strong
   view (:func:`ssl_course.data.augment.fixmatch_augment`: ``RandAugmentMC(n=2, m=10)`` + Cutout,
   as ``kekmodel/FixMatch-pytorch``) of each of the :math:`\mu B` unlabelled images;
2. **one** forward pass over the concatenation ``[labelled weak | unlabelled weak | unlabelled
   strong]``. The official code splits the batch into chunks and *interleaves* them so that
   every BN batch on every accelerator sees labelled and unlabelled images in the same mix; on one
   device the concatenated batch already has that mix, so we skip the interleave;
3. supervised cross-entropy on the labelled logits;
4. :func:`ssl_course.losses.fixmatch_loss` on the unlabelled logits: hard pseudo-label = arg-max of
   the weak view's softmax (no gradient), kept when its probability is :math:`\ge \tau = 0.95`,
   cross-entropy of the strong view, averaged over **all** :math:`\mu B` images;
5. :math:`\mathcal{L} = \mathcal{L}_s + \lambda_u \mathcal{L}_u` with :math:`\lambda_u = 1`.

Defaults as in the paper for CIFAR-10: :math:`B = 64`, :math:`\mu = 7` (the engine's primary
``batch_size`` is the unlabelled batch, 448, and ``labelled = 448 // 7 = 64``), SGD with Nesterov
momentum 0.9, lr 0.03, weight decay 5e-4. The engine's schedule is warm-up + cosine to 0; the
official one is :math:`\eta \cos(7\pi k / 16K)` without warm-up (it ends at 0.2·lr, not 0).

Evaluation uses an **exponential moving average** of the weights (decay 0.999), as the official
code does (:class:`EmaCopy`); ``ema_decay=0`` evaluates the trained weights instead. The EMA copy
takes its batch-norm statistics from the live model, whose BN momentum the official code sets to
0.001 (``kekmodel/FixMatch-pytorch`` ``models/wideresnet.py``, every ``BatchNorm2d``).
``bn_momentum=0.001`` reproduces it; the default (``None``) keeps
PyTorch's 0.1, because after a few hundred steps a 0.001 average still holds most of the
initial statistics (0.999^500 ≈ 0.61) and the evaluated model would be normalised wrongly.

Monitoring, never training: ``Batch.unlabeled_true_labels`` holds the hidden labels of the
unlabelled images. This method reads them **only to log** how many pseudo-labels are right
(``pseudo_correct_rate``, ``pseudo_acc_all``); the values are computed under ``no_grad`` after
the loss and never enter it. A real semi-supervised learner does not have these labels; the
course has them because the unlabelled pool is carved out of a labelled data set.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.data.augment import fixmatch_augment, weak_augment
from ssl_course.losses import fixmatch_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput


class EmaCopy(nn.Module):
    r"""A frozen copy of some modules whose weights follow the live ones by exponential averaging.

    After every optimiser step :meth:`update` applies, to every parameter,

    .. math:: \bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta, \qquad
              d = \min\!\Big(d_{\max}, \frac{1 + k}{10 + k}\Big)

    with :math:`k` the global step (0-based) and :math:`d_{\max}` = ``decay`` (0.999 in MixMatch and
    FixMatch). Buffers (batch-norm running statistics) are *copied* from the live model, as
    ``kekmodel/FixMatch-pytorch``'s ``ModelEMA`` does; in the TensorFlow originals the moving
    statistics are not averaged either.

    The warm-up factor :math:`(1+k)/(10+k)` is TensorFlow's ``ExponentialMovingAverage(num_updates=k)``
    rule. The official MixMatch/FixMatch code does **not** use it: they train for a million steps,
    where it makes no difference; the course trains for hundreds, where a plain 0.999 average
    would still be ~90 % random initial weights. Pass ``warmup=False`` for the official rule.

    The copy is a sub-module of the method, so it is in ``state_dict()`` (a resumed run continues
    the same average), its parameters have ``requires_grad=False`` (the optimiser never sees them)
    and it always stays in ``eval()`` mode.
    """

    def __init__(self, modules: Sequence[nn.Module], decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.copies = nn.ModuleList([copy.deepcopy(module) for module in modules])
        self.copies.requires_grad_(False)
        self.copies.eval()

    def train(self, mode: bool = True) -> EmaCopy:
        # The average is only ever evaluated: batch norm must use its stored statistics.
        return super().train(False)

    def decay_at(self, step: int) -> float:
        """The decay used after optimiser step ``step`` (0-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, modules: Sequence[nn.Module], step: int) -> None:
        """Move the averaged weights towards ``modules`` (the live ones, in the constructor's order)."""
        decay = self.decay_at(step)
        for averaged, live in zip(self.copies, modules, strict=True):
            for mean, current in zip(averaged.parameters(), live.parameters(), strict=True):
                mean.lerp_(current.detach(), 1.0 - decay)        # mean = d·mean + (1-d)·current
            for kept, current in zip(averaged.buffers(), live.buffers(), strict=True):
                kept.copy_(current)


def set_batch_norm_momentum(modules: Sequence[nn.Module], momentum: float | None) -> None:
    """Set the running-statistics momentum of every batch norm in ``modules`` (PyTorch's
    convention: ``running = (1 - momentum)·running + momentum·batch``); ``None`` leaves them."""
    if momentum is None:
        return
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"bn_momentum must be in (0, 1] or None (keep the backbone's), got {momentum}")
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.momentum = float(momentum)


class EmaEvaluation:
    """Mixin for a ``Method`` with ``backbone``, ``classifier`` and ``ema`` (an :class:`EmaCopy` or
    None): updates the average after every optimiser step and evaluates with it."""

    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.ema is not None:
            self.ema.update([self.backbone, self.classifier], step.step)

    def _networks(self) -> tuple[nn.Module, nn.Module]:
        if self.ema is not None:
            return self.ema.copies[0], self.ema.copies[1]
        return self.backbone, self.classifier

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features of the EMA backbone (the live one with ``ema_decay=0``)."""
        return self._networks()[0](images)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of the EMA model (the live one with ``ema_decay=0``)."""
        backbone, classifier = self._networks()
        return classifier(backbone(images))


@register
class FixMatch(EmaEvaluation, Method):
    """Backbone + linear classifier; weak/strong consistency with a confidence threshold."""

    name = "fixmatch"
    data_sources = ("labeled", "unlabeled")
    default_optimizer = "sgd"
    default_batch_size = 448                # unlabelled images per step (μB with B = 64, μ = 7)
    default_unlabeled_ratio = 7             # μ
    default_lr = 0.03 * 256 / 448           # the engine scales by batch/256: 0.03 at 448, as in the paper
    default_weight_decay = 5e-4
    has_classifier = True

    def __init__(self, backbone: nn.Module, num_classes: int, threshold: float = 0.95, lambda_u: float = 1.0,
                 ema_decay: float = 0.999, bn_momentum: float | None = None) -> None:
        super().__init__(backbone, num_classes)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if lambda_u < 0:
            raise ValueError(f"lambda_u must be >= 0, got {lambda_u}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 disables the EMA), got {ema_decay}")
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.threshold = float(threshold)
        self.lambda_u = float(lambda_u)
        self.ema_decay = float(ema_decay)
        self.bn_momentum = bn_momentum
        set_batch_norm_momentum([self.backbone], bn_momentum)
        self.ema = EmaCopy([self.backbone, self.classifier], ema_decay) if ema_decay > 0 else None

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        num_labeled, num_unlabeled = batch.labeled_images.shape[0], batch.unlabeled_images.shape[0]
        # 1. views: weak labelled, weak + strong unlabelled (all drawn from the step's generator)
        views = torch.cat([weak_augment(batch.labeled_images, generator=batch.generator),
                           weak_augment(batch.unlabeled_images, generator=batch.generator),
                           fixmatch_augment(batch.unlabeled_images, generator=batch.generator)])
        # 2. one forward pass over the concatenation (batch norm sees labelled and unlabelled together)
        logits = self.classifier(self.backbone(views)).float()
        logits_x = logits[:num_labeled]
        logits_weak, logits_strong = logits[num_labeled:].split(num_unlabeled)
        # 3. supervised cross-entropy on the labelled weak views
        loss_x = F.cross_entropy(logits_x, batch.labels)
        # 4. confident pseudo-labels of the weak views supervise the strong views
        loss_u, mask, pseudo_labels = fixmatch_loss(logits_weak, logits_strong, self.threshold)
        # 5. total loss
        loss = loss_x + self.lambda_u * loss_u

        logs = {"loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "mask_rate": mask.mean(),
                "train_acc": (logits_x.detach().argmax(1) == batch.labels).float().mean()}
        if batch.unlabeled_true_labels is not None:
            # MONITORING ONLY: the hidden labels measure the pseudo-labels; they never enter the loss.
            with torch.no_grad():
                right = (pseudo_labels == batch.unlabeled_true_labels).float()
                logs["pseudo_correct_rate"] = (right * mask).mean()   # passed AND right, over all μB
                logs["pseudo_acc_all"] = right.mean()                   # accuracy of every arg-max guess
        return StepOutput(loss, logs)
