r"""Draws of MixUp's mixing coefficient from a ``torch.Generator``, so a resumed run repeats them.

MixMatch and FeatMatch draw :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)` every step; the mixing
itself is the pure function :func:`ssl_course.losses.mixup`.
"""
from __future__ import annotations

import torch

__all__ = ["beta_sample"]


def beta_sample(alpha: float, size: int, generator: torch.Generator, device: torch.device | str,
                candidates: int = 24) -> torch.Tensor:
    r"""``size`` draws of :math:`\mathrm{Beta}(\alpha, \alpha)` using only ``generator``'s uniforms.

    ``torch.distributions.Beta`` cannot take a ``torch.Generator``, and a resumed run must repeat
    the step's randomness, so we use Jöhnk's (1964) rejection method: with :math:`U, V` uniform,
    :math:`X = U^{1/\alpha}`, :math:`Y = V^{1/\alpha}`, the ratio :math:`X/(X+Y)` conditioned on
    :math:`X + Y \le 1` is :math:`\mathrm{Beta}(\alpha, \alpha)`. Vectorised: ``candidates`` pairs per
    draw, the first accepted one wins (for :math:`\alpha = 0.75` a pair is accepted with probability
    0.64, so all 24 fail with probability :math:`< 10^{-10}`; then the first pair's ratio is used).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    uniforms = torch.rand((2, size, candidates), generator=generator, device=generator.device).to(device)
    x, y = uniforms[0].pow(1.0 / alpha), uniforms[1].pow(1.0 / alpha)
    ratio = x / (x + y).clamp_min(torch.finfo(x.dtype).tiny)
    accepted = (x + y) <= 1.0
    first = accepted.int().argmax(dim=1, keepdim=True)           # 0 when none is accepted
    return ratio.gather(1, first).squeeze(1)
