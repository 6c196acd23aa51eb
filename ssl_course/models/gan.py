"""The networks of a small BigBiGAN at 32×32: a generator, an encoder head and a three-part discriminator.

* :class:`Generator` ``G``: latent ``z [B, z_dim]`` → image ``[B, 3, 32, 32]`` in ``[-1, 1]``
  (tanh), DCGAN-style: a linear layer to a 4×4 map, then three (upsample ×2 → conv → BN → ReLU)
  blocks. BN in G and spectral normalisation in D follow BigGAN's recipe, at a laptop's scale.
* :class:`LatentHead`: the encoder is the course backbone followed by this head; it maps the
  pooled features to the mean and standard deviation of a Gaussian over ``z`` (BigBiGAN's
  non-deterministic encoder), so kNN and the linear probe still read the backbone's features.
* :class:`JointDiscriminator` ``D``: ``F`` (a conv net on the image), ``H`` (an MLP on the latent)
  and ``J`` (an MLP on the concatenated ``F(x), H(z)``), each with its own linear score, giving
  the three scores ``(s_x, s_z, s_xz)`` that :func:`ssl_course.losses.bigbigan_losses` takes.

Sizes (defaults ``z_dim=64``, ``width=64``): G 0.68 M parameters, D 0.69 M, the latent head 0.05 M.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ssl_course.data.augment import CIFAR10_MEAN, CIFAR10_STD

__all__ = ["Generator", "LatentHead", "JointDiscriminator", "tanh_to_normalized", "normalized_to_unit"]


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _channel_stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(CIFAR10_MEAN, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return mean, std


def tanh_to_normalized(images: torch.Tensor) -> torch.Tensor:
    """Generator output in ``[-1, 1]`` → the course's normalised image space, differentiably.

    (``ssl_course.data.augment.normalize`` runs under ``no_grad``; the generator needs gradients.)
    """
    mean, std = _channel_stats(images)
    return ((images + 1) / 2 - mean) / std


def normalized_to_unit(images: torch.Tensor) -> torch.Tensor:
    """Normalised images → ``[0, 1]`` for display (clamped)."""
    mean, std = _channel_stats(images)
    return (images * std + mean).clamp(0, 1)


class Generator(nn.Module):
    """``z [B, z_dim]`` → images ``[B, 3, 32, 32]`` in ``[-1, 1]``."""

    def __init__(self, z_dim: int = 64, width: int = 64) -> None:
        super().__init__()
        _check_positive_int("z_dim", z_dim)
        _check_positive_int("width", width)
        self.z_dim = z_dim
        channels = (4 * width, 2 * width, width)              # at 4×4 → 8×8 → 16×16 → 32×32
        self.project = nn.Sequential(nn.Linear(z_dim, channels[0] * 16, bias=False),
                                     nn.BatchNorm1d(channels[0] * 16), nn.ReLU())
        blocks = []
        for c_in, c_out in zip(channels, channels[1:] + (width,)):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)
        self._start = channels[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [B, {self.z_dim}], got {tuple(z.shape)}")
        x = self.project(z).view(z.shape[0], self._start, 4, 4)      # [B, 4w, 4, 4]
        x = self.blocks(x)                                           # [B, w, 32, 32]
        return torch.tanh(self.to_rgb(x))                            # [B, 3, 32, 32]


class LatentHead(nn.Module):
    """Backbone features ``[B, D]`` → Gaussian ``(mean, std)`` over ``z``, each ``[B, z_dim]``."""

    def __init__(self, feature_dim: int, z_dim: int = 64, hidden_dim: int = 256) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("z_dim", z_dim), ("hidden_dim", hidden_dim)):
            _check_positive_int(name, value)
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 2 * z_dim))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_std = self.net(features).chunk(2, dim=1)
        # softplus keeps the standard deviation positive; the small floor keeps it from collapsing to 0
        return mean, nn.functional.softplus(raw_std) + 1e-4


class JointDiscriminator(nn.Module):
    """``(x [B,3,32,32], z [B, z_dim])`` → scores ``(s_x, s_z, s_xz)``, each ``[B]``."""

    def __init__(self, z_dim: int = 64, width: int = 64, hidden_dim: int = 256) -> None:
        super().__init__()
        for name, value in (("z_dim", z_dim), ("width", width), ("hidden_dim", hidden_dim)):
            _check_positive_int(name, value)
        self.z_dim = z_dim

        def conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [spectral_norm(nn.Conv2d(c_in, c_out, 3, stride, 1)), nn.LeakyReLU(0.2)]

        def linear(d_in: int, d_out: int) -> nn.Module:
            return spectral_norm(nn.Linear(d_in, d_out))

        # F: 32 → 16 → 8 → 4, then global sum pooling (as in BigGAN's discriminator)
        self.F = nn.Sequential(*conv(3, width, 1), *conv(width, width, 2), *conv(width, 2 * width, 2),
                               *conv(2 * width, 4 * width, 2))
        self.H = nn.Sequential(linear(z_dim, hidden_dim), nn.LeakyReLU(0.2), linear(hidden_dim, hidden_dim),
                               nn.LeakyReLU(0.2))
        self.J = nn.Sequential(linear(4 * width + hidden_dim, hidden_dim), nn.LeakyReLU(0.2),
                               linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2))
        self.score_x = linear(4 * width, 1)
        self.score_z = linear(hidden_dim, 1)
        self.score_xz = linear(hidden_dim, 1)

    def forward(self, images: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or z.dim() != 2 or z.shape[1] != self.z_dim or images.shape[0] != z.shape[0]:
            raise ValueError(f"expected images [B,3,H,W] and z [B, {self.z_dim}] with the same B; "
                             f"got {tuple(images.shape)} and {tuple(z.shape)}")
        f = self.F(images).sum(dim=(2, 3))                            # [B, 4w]
        h = self.H(z)                                                 # [B, hidden]
        j = self.J(torch.cat([f, h], dim=1))                          # [B, hidden]
        return self.score_x(f).squeeze(1), self.score_z(h).squeeze(1), self.score_xz(j).squeeze(1)
