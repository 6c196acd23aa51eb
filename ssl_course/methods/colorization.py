"""Colorful image colorization: predict the colours (ab) of an image from its lightness (L)
(Zhang, Isola & Efros, ECCV 2016).

The network sees only the L channel of the CIE Lab image and predicts, for every output pixel, a
distribution over the Q quantised ab colours. Knowing that grass is green and the sky blue takes
knowing grass and sky. The representation is the trunk that sees L.

Algorithm (one step)::

    1. rgb = denormalize(weak_augment(images))               # crop + flip, RGB in [0, 1]
    2. lab = rgb_to_lab(rgb); L, ab = lab[:, :1], lab[:, 1:]
    3. maps = backbone.forward_maps(lightness_input(L))      # L replicated on 3 channels
    4. logits = decoder(maps[-1], maps[-2])                  # [B, Q, h, w] at 1/4 resolution (8x8)
    5. y = subsample_ab(ab, (h, w))                           # every 4th pixel, as the official net
       Z = soft_encode_ab(y, centers)                         # [B, Q, h, w], 10 nearest bins, σ = 5
    6. w = class_rebalancing_weights(prior, λ = 0.5)         # prior: bins seen so far, smoothed
       m = non_grey_mask(y)                                   # [B]: grey images (|ab| <= 5) get 0
    7. loss = colorization_loss(logits, Z, w, m)

With ``loss="regression"`` steps 4-7 become a 2-channel output and the L2 loss on ab (the paper's
baseline, which averages plausible colours into grey). Colours are read out with the annealed mean
(``T = 0.38``) in :meth:`Colorization.predict_ab`.

Conventions (``docs/RECIPES.md`` has the table):

* The paper predicts at 1/4 of the input resolution (56x56 for 224x224); here 8x8 for 32x32: a
  small decoder adds the upsampled last feature map to the one before it (the backbones' last
  maps are 4x4, too coarse for colours).
* The rebalancing prior is the soft-encoded histogram of the training pixels *seen so far*
  (a buffer, saved with the checkpoint), smoothed with σ = 5; the paper computes it once over
  ImageNet. After one epoch it covers every training image.
* ``embed`` (kNN, linear probe) converts normal RGB inputs to L first, so the evaluated trunk sees
  what it was trained on.
* As in the official training net (``richzhang/colorization``,
  ``models/colorization_train_val_v2.prototxt``): the target is ab at every 4th pixel
  (``data_ab_ss``, a stride-4 1x1 convolution; the pooled variant there is commented out, and
  averaging would pull the colours on both sides of an edge towards grey), each target colour is
  spread over its **10** nearest bins (``NNEncLayer``; the paper says 5), and images without
  colour (every subsampled |a|, |b| <= 5, ``NonGrayMaskLayer``) are left out of the loss
  (``mask_grey_images``). The regression baseline keeps every image.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.data.augment import denormalize, weak_augment
from ssl_course.data.color import ab_bin_centers, lab_to_rgb, rgb_to_lab
from ssl_course.losses.pretext import (
    annealed_mean,
    class_rebalancing_weights,
    colorization_l2_loss,
    colorization_loss,
    non_grey_mask,
    soft_encode_ab,
)

from . import register
from .base import Batch, Method, StepInfo, StepOutput

LOSSES = ("classification", "regression")
AB_SCALE = 100.0   # the regression head predicts ab / 100 (ab lies within about ±110)
GREY_THRESHOLD = 5.0   # an image whose subsampled |a|, |b| never exceed this is grey (official value)


def subsample_ab(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,2,H,W]`` → ``[B,2,h,w]``: the pixel at the top-left of every ``H/h x W/w`` block.

    The official net takes its targets this way (a stride-4 1x1 convolution with weight 1,
    ``data_ab_ss``): every target is a real colour of the image. Averaging each block instead
    mixes the colours on both sides of an edge into a duller one.
    """
    height, width = ab.shape[-2:]
    if height % size[0] or width % size[1]:
        raise ValueError(f"the image ({height}x{width}) must be a whole multiple of the output {size}; "
                         "use 32x32 images with the course backbones (8x8 output).")
    return ab[:, :, ::height // size[0], ::width // size[1]]


def lightness_input(lightness: torch.Tensor) -> torch.Tensor:
    """L ``[B,1,H,W]`` in [0, 100] → the trunk's input ``[B,3,H,W]``: L scaled to about [-2, 2], on 3 channels.

    The scale matches the CIFAR-normalised RGB the backbones usually see (std ~1), and 3 equal
    channels let any backbone of the course take it unchanged.
    """
    return ((lightness - 50.0) / 25.0).expand(-1, 3, -1, -1)


class _Decoder(nn.Module):
    """Last feature map upsampled and added to the one before it, then a 1x1 classifier."""

    def __init__(self, top_channels: int, skip_channels: int, outputs: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(top_channels, skip_channels, 1, bias=False),
                                    nn.BatchNorm2d(skip_channels))
        self.mix = nn.Sequential(nn.Conv2d(skip_channels, skip_channels, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(skip_channels), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(skip_channels, outputs, 1)

    def forward(self, top: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(self.reduce(top), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.mix(upsampled + skip))


@register
class Colorization(Method):
    """Trunk on L, decoder to ab: classification over ab bins (default) or L2 regression."""

    name = "colorization"
    data_sources = ("all",)
    default_optimizer = "adamw"
    default_lr = 1e-3           # the paper uses Adam (lr 3e-5 at batch 40, from scratch on ImageNet)
    default_weight_decay = 1e-3
    default_batch_size = 128

    def __init__(self, backbone: nn.Module, num_classes: int, loss: str = "classification",
                 rebalance_mix: float = 0.5, annealing_temperature: float = 0.38, neighbours: int = 10,
                 sigma: float = 5.0, mask_grey_images: bool = True) -> None:
        super().__init__(backbone, num_classes)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
        if not hasattr(backbone, "forward_maps") or len(getattr(backbone, "stage_channels", ())) < 2:
            raise ValueError("colorization needs a backbone with forward_maps() and at least two stages "
                             "(stage_channels); use ssl_course.models.build_backbone.")
        if not 0.0 <= rebalance_mix <= 1.0 or annealing_temperature <= 0 or sigma <= 0 or neighbours < 1:
            raise ValueError("need 0 <= rebalance_mix <= 1, annealing_temperature > 0, sigma > 0, neighbours >= 1; "
                             f"got {rebalance_mix}, {annealing_temperature}, {sigma}, {neighbours}.")
        self.loss = loss
        self.rebalance_mix, self.annealing_temperature = float(rebalance_mix), float(annealing_temperature)
        self.neighbours, self.sigma = int(neighbours), float(sigma)
        self.mask_grey_images = bool(mask_grey_images)
        self.register_buffer("centers", ab_bin_centers().clone(), persistent=False)    # [Q, 2], a constant
        bins = len(self.centers)
        # soft counts of the training pixels' colours, for the rebalancing prior (saved: resumable)
        self.register_buffer("bin_counts", torch.zeros(bins))
        skip_channels, top_channels = backbone.stage_channels[-2], backbone.stage_channels[-1]
        self.decoder = _Decoder(top_channels, skip_channels, bins if loss == "classification" else 2)

    # --- networks -------------------------------------------------------------------------------
    def decode(self, lightness: torch.Tensor) -> torch.Tensor:
        """L ``[B,1,H,W]`` → logits ``[B,Q,h,w]`` (classification) or ab / 100 ``[B,2,h,w]`` (regression)."""
        maps = self.backbone.forward_maps(lightness_input(lightness))
        return self.decoder(maps[-1], maps[-2])

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        """L ``[B,1,H,W]`` → predicted ab ``[B,2,H,W]`` at full resolution (annealed mean for classification)."""
        output = self.decode(lightness).float()
        with torch.autocast(output.device.type, enabled=False):   # the annealed mean's product in float32
            ab = (annealed_mean(output, self.centers, self.annealing_temperature) if self.loss == "classification"
                  else output * AB_SCALE)
            return F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def colorize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised RGB ``[B,3,H,W]`` → RGB in [0, 1] with the image's own L and the predicted ab."""
        lightness = rgb_to_lab(denormalize(images).clamp(0, 1))[:, :1]
        return lab_to_rgb(torch.cat([lightness, self.predict_ab(lightness)], dim=1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        # normal (normalised RGB) inputs are turned into the L input the trunk was trained on
        lightness = rgb_to_lab(denormalize(images).clamp(0, 1))[:, :1]
        return self.backbone(lightness_input(lightness))

    # --- training -------------------------------------------------------------------------------
    def rebalancing_weights(self) -> torch.Tensor:
        """``[Q]`` weights from the colours seen so far (uniform before the first step)."""
        counts = self.bin_counts + 1e-6        # an empty bin must not divide by zero
        return class_rebalancing_weights(counts, self.rebalance_mix, self.centers, self.sigma)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # 1-2. an augmented view in Lab (float32 even under autocast: ab are the targets)
        rgb = denormalize(weak_augment(batch.unlabeled_images, generator=batch.generator)).clamp_(0, 1)
        lab = rgb_to_lab(rgb)
        lightness, ab = lab[:, :1], lab[:, 1:]
        # 3-4. trunk on L, decoder at 1/4 resolution
        output = self.decode(lightness)
        # 5-7. targets, rebalancing weights and loss in float32 outside autocast: the prior's smoothing is
        #      a matrix product, and the targets need more than bfloat16's three digits
        with torch.autocast(lab.device.type, enabled=False):
            return self._loss_and_logs(output.float(), ab)

    def _loss_and_logs(self, output: torch.Tensor, ab: torch.Tensor) -> StepOutput:
        """Steps 5-7 on the decoder's float32 ``output`` and the view's true ``ab`` ``[B,2,H,W]``."""
        target_ab = subsample_ab(ab, output.shape[-2:])                        # [B, 2, h, w]
        if self.loss == "regression":
            loss = colorization_l2_loss(output, target_ab / AB_SCALE)
            error = (output.detach() * AB_SCALE - target_ab).pow(2).sum(1).mean().sqrt()
            return StepOutput(loss, {"ab_rmse": error})
        # 5. soft targets over the Q bins, and the colours seen so far for the prior
        targets = soft_encode_ab(target_ab, self.centers, self.neighbours, self.sigma)   # [B, Q, h, w]
        # 6. grey images (no colour to teach) are left out of the loss and of the prior
        mask = non_grey_mask(target_ab, GREY_THRESHOLD) if self.mask_grey_images else None
        if self.training:
            counted = targets.detach() if mask is None else targets.detach() * mask[:, None, None, None]
            self.bin_counts += counted.sum(dim=(0, 2, 3))
        # 7. rebalanced cross-entropy
        loss = colorization_loss(output, targets, self.rebalancing_weights(), mask)
        accuracy = (output.detach().argmax(1) == targets.argmax(1)).float().mean()
        return StepOutput(loss, {"bin_acc": accuracy})

    @torch.no_grad()
    def pretext_loss(self, images: torch.Tensor) -> float:
        """The task's loss on normalised ``images`` without augmentation or rebalancing (lower is better)."""
        lab = rgb_to_lab(denormalize(images).clamp(0, 1))
        output = self.decode(lab[:, :1]).float()
        with torch.autocast(lab.device.type, enabled=False):
            target_ab = subsample_ab(lab[:, 1:], output.shape[-2:])
            if self.loss == "regression":
                return colorization_l2_loss(output, target_ab / AB_SCALE).item()
            targets = soft_encode_ab(target_ab, self.centers, self.neighbours, self.sigma)
            return colorization_loss(output, targets).item()

