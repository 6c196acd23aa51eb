"""BigBiGAN: learn an encoder by playing a GAN game on (image, latent) pairs (Donahue & Simonyan, NeurIPS 2019).

A generator G maps latents z ~ N(0, I) to images; an encoder E (the course backbone + a latent
head) maps images to latents. A joint discriminator D sees pairs and must tell real pairs
(x, E(x)) from generated pairs (G(z), z). The only way for E and G to fool it is to make the two
joint distributions equal, which at the optimum makes E and G inverses of each other (the
BiGAN/ALI result). E must therefore encode whatever G needs to draw the image: a representation
learned without labels and without hand-made augmentations. BigBiGAN adds two unary scores to
the joint one: ``s_x`` on the image alone (a plain GAN critic, which improves samples) and
``s_z`` on the latent alone (which pushes E's outputs towards the prior).

One training step has two updates, each with its own Adam optimiser::

    "discriminator":                                   # D's parameters only
        1. x     = flip(images)                        # [B,3,32,32] normalised real images
        2. ẑ     = E(x)      (no gradient)             # [B, z_dim]   sample of E's Gaussian
           z ~ N(0, I);  x̂ = G(z) (no gradient)        # [B, z_dim], [B,3,32,32]
        3. real = D(x, ẑ); fake = D(x̂, z)              # each (s_x, s_z, s_xz), [B] per part
        4. loss = bigbigan_losses(real, fake)[0]       # hinge loss
    "encoder_generator":                               # E's and G's parameters
        same pairs recomputed with gradients through E and G (fresh flips and z), D fixed:
        loss = bigbigan_losses(real, fake)[1]          # un-hinged loss

Conventions (details and sources in docs/RECIPES.md):

* Non-deterministic encoder as in BigBiGAN: the head predicts a Gaussian's mean and standard
  deviation, and ``ẑ`` is a reparameterised sample. Evaluation (kNN, linear probe) reads the
  pooled backbone features through :meth:`embed`, as for every other method.
* Adam with β = (0, 0.999) and no weight decay, BigGAN's optimiser; one D update per E/G update.
* Real images only get a random horizontal flip: a crop with reflect-padding would add borders
  that the generator then has to imitate.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import weak_augment
from ssl_course.losses.adversarial import bigbigan_losses
from ssl_course.models.gan import Generator, JointDiscriminator, LatentHead, tanh_to_normalized

from . import register
from .base import Batch, Method, OptimizerSpec, StepInfo, StepOutput

ADAM_BETAS = (0.0, 0.999)     # BigGAN (Brock et al. 2019, Appendix C), inherited by BigBiGAN
PART_NAMES = ("s_x", "s_z", "s_xz")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@register
class BigBiGAN(Method):
    """Backbone encoder + latent head, generator and joint F/H/J discriminator, trained adversarially."""

    name = "bigbigan"
    data_sources = ("all",)
    updates = ("discriminator", "encoder_generator")
    # After training only E and G are used (features, samples, reconstructions): a reference run
    # (ssl_course.reference) leaves D's weights out, which halves its weights.pt.
    training_only_state = ("discriminator.",)
    default_optimizer = "adam"
    default_lr = 4e-4           # for a batch of 256; the engine scales linearly: 2e-4 at the default 128
    default_weight_decay = 0.0
    default_batch_size = 128

    def __init__(self, backbone: nn.Module, num_classes: int, z_dim: int = 64, generator_width: int = 64,
                 discriminator_width: int = 64, hidden_dim: int = 256) -> None:
        super().__init__(backbone, num_classes)
        for name, value in (("z_dim", z_dim), ("generator_width", generator_width),
                            ("discriminator_width", discriminator_width), ("hidden_dim", hidden_dim)):
            _check_positive_int(name, value)
        self.z_dim = z_dim
        self.generator_width, self.discriminator_width = generator_width, discriminator_width
        self.hidden_dim = hidden_dim
        self.latent_head = LatentHead(backbone.feature_dim, z_dim, hidden_dim)
        self.generator = Generator(z_dim, generator_width)
        self.discriminator = JointDiscriminator(z_dim, discriminator_width, hidden_dim)

    # --- the two networks E and G -------------------------------------------------------------
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None,
               sample: bool = True) -> torch.Tensor:
        """Normalised images ``[B,3,H,W]`` → latents ``[B, z_dim]``: a sample of E's Gaussian, or its mean."""
        mean, std = self.latent_head(self.backbone(images))          # [B, z_dim] each
        if not sample:
            return mean
        return mean + std * self._normal(mean.shape, generator, mean)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, z_dim]`` → normalised images ``[B,3,32,32]`` (the space the encoder reads)."""
        return tanh_to_normalized(self.generator(z))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """``G(E(x))`` with E's mean: normalised images in, normalised images out."""
        return self.generate(self.encode(images, sample=False))

    @staticmethod
    def _normal(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None,
                like: torch.Tensor) -> torch.Tensor:
        device = generator.device if generator is not None else like.device
        return torch.randn(tuple(shape), generator=generator, device=device).to(like.device, like.dtype)

    # --- one training step: two updates -------------------------------------------------------
    def _pairs(self, batch: Batch, with_gradients: bool):
        """Scores of the real pairs (x, E(x)) and the generated pairs (G(z), z)."""
        images = batch.unlabeled_images
        # 1. real images, flip only (see the module docstring)
        x = weak_augment(images, generator=batch.generator, pad=0)                 # [B,3,H,W]
        z = self._normal((images.shape[0], self.z_dim), batch.generator, x)          # [B, z_dim]
        # 2. E(x) and G(z); the discriminator's update does not need their gradients
        with torch.set_grad_enabled(with_gradients and torch.is_grad_enabled()):
            z_hat = self.encode(x, batch.generator)                                    # [B, z_dim]
            x_fake = self.generate(z)                                                  # [B,3,32,32]
        # 3. the three scores of each pair
        return self.discriminator(x, z_hat), self.discriminator(x_fake, z)

    def update_step(self, update: str, batch: Batch, step: StepInfo) -> StepOutput:
        if update == "discriminator":
            real, fake = self._pairs(batch, with_gradients=False)
            d_loss, _ = bigbigan_losses(real, fake)
            return StepOutput(d_loss, {"discriminator": d_loss.detach(), **self._score_logs(real, fake)})
        if update == "encoder_generator":
            real, fake = self._pairs(batch, with_gradients=True)
            _, eg_loss = bigbigan_losses(real, fake)
            return StepOutput(eg_loss, {"encoder_generator": eg_loss.detach()})
        raise ValueError(f"bigbigan has the updates {self.updates}, got {update!r}")

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        raise NotImplementedError("bigbigan trains with two optimisers: the engine calls update_step for each "
                                  f"of {self.updates}; there is no single training_step loss")

    @staticmethod
    def _score_logs(real, fake) -> dict[str, torch.Tensor]:
        """Mean score of each part on real and generated pairs, and D's accuracy on the summed score."""
        logs = {}
        for part, real_score, fake_score in zip(PART_NAMES, real, fake):
            logs[f"real_{part}"] = real_score.detach().mean()
            logs[f"fake_{part}"] = fake_score.detach().mean()
        real_total, fake_total = sum(real).detach(), sum(fake).detach()             # [B] each
        logs["d_accuracy"] = 0.5 * ((real_total > 0).float().mean() + (fake_total < 0).float().mean())
        return logs

    # --- optimisers ----------------------------------------------------------------------------
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """D on one Adam; E (backbone + latent head) and G together on the other, same lr."""
        encoder_generator = [*self.backbone.parameters(), *self.latent_head.parameters(),
                             *self.generator.parameters()]
        return {"discriminator": OptimizerSpec(list(self.discriminator.parameters()), optimizer="adam",
                                               betas=ADAM_BETAS, weight_decay=0.0),
                "encoder_generator": OptimizerSpec(encoder_generator, optimizer="adam",
                                                   betas=ADAM_BETAS, weight_decay=0.0)}

