r"""Checkers for the exercises of notebook 07 (BiGAN → BigBiGAN).

Same verdict format as the other checkers: six random inputs, "✓ correct on 6 inputs" or the
first input where the learner's function differs, both values, and a hint naming the usual
mistake. Exceptions raised by the learner's function are reported, never propagated.

* :func:`check_bigbigan_discriminator_loss`: ``fn(real_scores, fake_scores)`` with each argument a
  tuple ``(s_x, s_z, s_xz)`` of ``[B]`` tensors; the reference is the first output of
  :func:`ssl_course.losses.bigbigan_losses`.
* :func:`check_bigbigan_encoder_generator_loss`: same arguments; the reference is its second output.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ssl_course.exercises._checking import _Case, _dtype_name, _generator, _run_scalar_checks, _Variant
from ssl_course.losses.adversarial import bigbigan_losses

__all__ = ["check_bigbigan_discriminator_loss", "check_bigbigan_encoder_generator_loss"]

_SETTINGS = [  # (B real, B generated, dtype)
    (8, 8, torch.float64),
    (16, 16, torch.float32),
    (5, 7, torch.float64),
    (12, 12, torch.float32),
    (20, 10, torch.float64),
    (6, 6, torch.float32),
]


def _cases() -> list[_Case]:
    gen = _generator(1013)
    cases = []
    for b_real, b_fake, dtype in _SETTINGS:
        # scores spread around ±1 so that some hinges are active and some are not
        real = tuple((0.5 + 1.5 * torch.randn(b_real, generator=gen, dtype=torch.float64)).to(dtype)
                     for _ in range(3))
        fake = tuple((-0.5 + 1.5 * torch.randn(b_fake, generator=gen, dtype=torch.float64)).to(dtype)
                     for _ in range(3))
        desc = (f"real_scores: three [{b_real}] tensors, fake_scores: three [{b_fake}] tensors, "
                f"{_dtype_name(dtype)}")
        cases.append(_Case((real, fake), desc, dtype))
    return cases


def _reference_d(real, fake) -> Tensor:
    return bigbigan_losses(real, fake)[0]


def _reference_eg(real, fake) -> Tensor:
    return bigbigan_losses(real, fake)[1]


def _hinged(real, fake, real_sign=1.0, fake_sign=-1.0, parts=(0, 1, 2), margin=1.0, reduce="sum") -> Tensor:
    real_terms = torch.stack([torch.relu(margin - real_sign * real[p]) for p in parts])   # [P, B]
    fake_terms = torch.stack([torch.relu(margin - fake_sign * fake[p]) for p in parts])   # [P, B']
    if reduce == "mean":
        return real_terms.mean(0).mean() + fake_terms.mean(0).mean()
    return real_terms.sum(0).mean() + fake_terms.sum(0).mean()


def _d_variants() -> list[_Variant]:
    return [
        _Variant(lambda r, f: _reference_eg(r, f) * -1.0,
                 "that is the un-hinged score difference; the discriminator's loss hinges every score: "
                 "max(0, 1 - s) for real pairs and max(0, 1 + s) for generated pairs."),
        _Variant(lambda r, f: _hinged(r, f, real_sign=-1.0, fake_sign=1.0),
                 "the signs are swapped: real pairs (x, E(x)) should get scores >= +1, generated pairs "
                 "(G(z), z) scores <= -1."),
        _Variant(lambda r, f: _hinged(r, f, parts=(2,)),
                 "BigBiGAN's discriminator loss hinges all three scores s_x, s_z and s_xz, not only the "
                 "joint one."),
        _Variant(lambda r, f: _hinged(r, f, reduce="mean"),
                 "sum the three hinged parts for each pair (then average over the pairs); you averaged "
                 "the parts."),
        _Variant(lambda r, f: _hinged(r, f, margin=0.0),
                 "the hinge is max(0, 1 - y·s) with a margin of 1; without it any correct sign costs nothing."),
    ]


def _eg_variants() -> list[_Variant]:
    return [
        _Variant(lambda r, f: _hinged(r, f, real_sign=-1.0, fake_sign=1.0),
                 "the encoder-generator loss is NOT hinged in BigBiGAN: it is mean(s_x+s_z+s_xz) on real "
                 "pairs minus the same on generated pairs, so its gradient never vanishes."),
        _Variant(lambda r, f: -_reference_eg(r, f),
                 "the sign is reversed: E and G want the real pairs to look generated (lower their scores) "
                 "and the generated pairs to look real (raise their scores)."),
        _Variant(lambda r, f: r[2].mean() - f[2].mean(),
                 "include the unary scores s_x and s_z, not only the joint score s_xz."),
        _Variant(lambda r, f: -f[0].mean() - f[1].mean() - f[2].mean(),
                 "keep the real pairs' term: the encoder is trained through the scores of (x, E(x))."),
    ]


def check_bigbigan_discriminator_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(real_scores, fake_scores)``: BigBiGAN's hinge loss for the discriminator."""
    return _run_scalar_checks(
        fn, _cases(), _reference_d, _d_variants(),
        "for each real pair sum max(0, 1 - s) over its three scores, for each generated pair sum "
        "max(0, 1 + s); average each over its batch and add the two averages.",
    )


def check_bigbigan_encoder_generator_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(real_scores, fake_scores)``: BigBiGAN's (un-hinged) loss for the encoder and generator."""
    return _run_scalar_checks(
        fn, _cases(), _reference_eg, _eg_variants(),
        "sum the three scores of each pair; return mean over real pairs minus mean over generated pairs.",
    )
