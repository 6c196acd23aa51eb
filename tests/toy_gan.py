"""A two-player toy for the engine's multi-optimiser contract: a 1-D GAN.

The generator maps noise ``z ~ N(0, 1)`` to samples ``a·z + b``; the discriminator (a small MLP)
tells them apart from samples of the target ``N(TARGET_MEAN, TARGET_STD²)``. Each training step
has two updates, each with its own optimiser (Goodfellow et al. 2014, "Generative Adversarial
Nets", with the non-saturating generator loss):

.. math::

    L_D = -\\log D(x) - \\log(1 - D(G(z))), \\qquad L_G = -\\log D(G(z)).

The generator is the method's "backbone" (so the engine's ``torch.compile`` path covers it). The
discriminator update does not detach ``G(z)``: its loss sends gradients into the generator too,
and the engine must clear them before the generator's own update.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.methods.base import Batch, Method, OptimizerSpec, StepInfo, StepOutput

TARGET_MEAN, TARGET_STD = 2.0, 0.5


class Generator(nn.Linear):
    feature_dim = 1

    def __init__(self) -> None:
        super().__init__(1, 1)
        with torch.no_grad():            # starts at N(0, 1): far from the target
            self.weight.fill_(1.0)
            self.bias.zero_()


class ToyGAN(Method):
    name = "toy_gan"
    data_sources = ("all",)              # only the batch size matters: samples come from the generators
    updates = ("discriminator", "generator")
    default_optimizer = "adam"
    default_lr = 0.4                     # batch 64: a peak lr of 0.1 for the discriminator
    default_weight_decay = 0.0
    default_batch_size = 64

    def __init__(self, num_classes: int = 10, generator_lr_multiplier: float = 0.25) -> None:
        super().__init__(Generator(), num_classes)
        self.discriminator = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
        self.generator_lr_multiplier = generator_lr_multiplier   # slower generator (two time-scale rule)

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {"discriminator": OptimizerSpec(list(self.discriminator.parameters()), betas=(0.5, 0.999)),
                "generator": OptimizerSpec(list(self.backbone.parameters()), betas=(0.5, 0.999),
                                           lr_multiplier=self.generator_lr_multiplier)}

    def _noise(self, batch: Batch) -> torch.Tensor:
        size = batch.unlabeled_images.shape[0]
        return torch.randn(size, 1, generator=batch.generator, device=batch.unlabeled_images.device)   # [B, 1]

    def update_step(self, update: str, batch: Batch, step: StepInfo) -> StepOutput:
        fake = self.backbone(self._noise(batch))                                            # [B, 1]
        fake_logits = self.discriminator(fake).squeeze(1)                                   # [B]
        if update == "discriminator":
            real = TARGET_MEAN + TARGET_STD * self._noise(batch)                             # [B, 1]
            real_logits = self.discriminator(real).squeeze(1)                               # [B]
            loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                    + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            return StepOutput(loss, {"discriminator_loss": loss.detach()})
        if update == "generator":
            loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
            return StepOutput(loss, {"generator_loss": loss.detach()})
        raise ValueError(f"unknown update {update!r}")

    @torch.no_grad()
    def sample_statistics(self, count: int = 20_000) -> tuple[float, float]:
        """Mean and standard deviation of ``count`` generated samples (fixed noise)."""
        noise = torch.randn(count, 1, generator=torch.Generator().manual_seed(0))
        samples = self.backbone(noise.to(self.backbone.weight.device))
        return float(samples.mean()), float(samples.std())
