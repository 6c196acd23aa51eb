"""SelfCon-S: single-view supervised contrast between a network and its own sub-network.

Bae, Kim, Ko, Lee, Noh and Yun, "Self-Contrastive Learning: Single-viewed Supervised
Contrastive Framework using Sub-network", AAAI 2023 (code: raymin0223/self-contrastive-learning).

Algorithm::

    for each batch of labelled images x with labels y:
        v = ONE contrastive augmentation of x
        f, [g] = multi_exit_net(v)                      # final exit and sub-network exit
        z_f, z_g = normalise(head_f(f)), normalise(head_g(g))
        loss = SupCon over the stacked exits [z_g, z_f] with the labels
    evaluate: linear probe on the final exit's backbone features

The two exits of one forward pass play the role of SupCon's two augmented views, so each step
needs one augmentation and one (slightly longer) forward pass instead of two. The sub-network
(``ssl_course.models.MultiExitNet``) branches off after stage ``exit_after`` and shares the
layers before it; its gradient therefore also trains the shared early layers.

Conventions, from the official code (``main_represent.py``, ``networks/resnet_big.py``,
``losses/losses.py``):

* one MLP head per exit, ``Linear(D, D) → ReLU → Linear(D, 128)`` without batch norm, outputs
  L2-normalised;
* ``ConLoss(temperature=0.1)`` (``--temp 0.1`` in ``scripts/selfcon_represent.sh``) with its
  default ``base_temperature = 0.07``; stacking order sub-networks first, backbone last;
* SGD, momentum 0.9, weight decay 1e-4, lr 0.5 at batch 1024 (``default_lr`` 0.125 at 256).

Difference: the official CIFAR script's sub-network is ``--selfcon_size fc`` (a linear layer on
the pooled intermediate features) at ``--selfcon_pos [False,True,False]`` (after ResNet stage 2);
the course's ``MultiExitNet`` uses one strided conv block per remaining stage instead, and
``exit_after=1`` is the same position (after the second stage).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course import distributed
from ssl_course.data.augment import contrastive_augment
from ssl_course.losses.contrastive import selfcon
from ssl_course.models import MultiExitNet, mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class SelfCon(Method):
    """A multi-exit backbone with a projection head per exit, trained with the SelfCon-S loss."""

    name = "selfcon"
    data_sources = ("labeled",)
    default_lr = 0.125
    default_weight_decay = 1e-4
    default_nesterov = False      # SelfCon's code (built on SupContrast): SGD with momentum, no Nesterov
    default_batch_size = 256

    def __init__(self, backbone: nn.Module, num_classes: int, temperature: float = 0.1,
                 base_temperature: float = 0.07, proj_dim: int = 128, exit_after: int = 1) -> None:
        # The method's backbone is the multi-exit wrapper: its forward() is the final exit, which is
        # what embed() (kNN, linear probe) uses; forward_exits() gives both exits for training.
        super().__init__(MultiExitNet(backbone, exit_after=exit_after), num_classes)
        if not temperature > 0 or not base_temperature > 0:
            raise ValueError(f"temperature and base_temperature must be > 0, got {temperature}, {base_temperature}")
        if not isinstance(proj_dim, int) or proj_dim < 1:
            raise ValueError(f"proj_dim must be a positive int, got {proj_dim!r}")
        feature_dim = self.backbone.feature_dim
        self.head = mlp_head(feature_dim, feature_dim, proj_dim, num_layers=2, batch_norm=False)
        self.sub_heads = nn.ModuleList([mlp_head(feature_dim, feature_dim, proj_dim, num_layers=2, batch_norm=False)])
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)
        self.proj_dim = proj_dim
        self.exit_after = exit_after

    def project_exits(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Normalised float images → (final-exit projection ``[B, P]``, [sub-network projections])."""
        final, subnets = self.backbone.forward_exits(images)
        final = self.head(final)
        subnets = [head(features) for head, features in zip(self.sub_heads, subnets)]
        with torch.autocast(images.device.type, enabled=False):
            return F.normalize(final.float(), dim=1), [F.normalize(z.float(), dim=1) for z in subnets]

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # 1. ONE contrastive view of each labelled image (no second augmentation)
        view = contrastive_augment(batch.labeled_images, generator=batch.generator)
        # 2. one forward pass, two exits: the sub-network's output is the image's positive "view"
        backbone_z, subnet_z = self.project_exits(view)
        # 3. SupCon over the exits: positives = the other exit of the same image + every same-class output
        #    (float32 outside autocast, like SupCon)
        with torch.autocast(view.device.type, enabled=False):
            # under torchrun, anchors and candidates come from every process
            gathered_backbone = distributed.gather_with_grad(backbone_z.float())
            gathered_subnets = [distributed.gather_with_grad(z.float()) for z in subnet_z]
            loss = selfcon(gathered_backbone, gathered_subnets, distributed.gather(batch.labels),
                           temperature=self.temperature, base_temperature=self.base_temperature)
        with torch.no_grad():
            agreement = (backbone_z * subnet_z[0]).sum(1).mean()   # cosine of the two exits, same image
        return StepOutput(loss, {"exit_cosine": agreement})
