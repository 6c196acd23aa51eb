r"""Adversarial representation learning: the losses of BigBiGAN's joint discriminator game.

``bigbigan_losses`` turns the discriminator's three scores on real pairs :math:`(x, E(x))` and on
generated pairs :math:`(G(z), z)` into the two losses of one training step: the discriminator's
hinge loss and the encoder-and-generator's loss. Pure function: it computes in the dtype and on
the device of its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._checks import check_floating, check_ndim, check_nonempty, check_same_device_dtype, check_same_shape

__all__ = ["bigbigan_losses"]

#: Names of the three scores, in the order of the tuples ``bigbigan_losses`` takes.
SCORE_PARTS = ("s_x", "s_z", "s_xz")


def _check_scores(name: str, scores: object) -> tuple[Tensor, Tensor, Tensor]:
    """``scores`` must be a tuple ``(s_x, s_z, s_xz)`` of three 1-D float tensors of one shape ``[B]``."""
    if not isinstance(scores, Sequence) or isinstance(scores, (str, bytes)) or len(scores) != 3:
        got = f"a {type(scores).__name__} of length {len(scores)}" if isinstance(scores, Sequence) \
            else f"an object of type {type(scores).__name__}"
        raise ValueError(
            f"{name} must be a tuple (s_x, s_z, s_xz) of three [B] score tensors (the discriminator's "
            f"unary score on x, unary score on z and joint score); got {got}. "
            f"Return the three scores of the discriminator as a tuple."
        )
    parts = [f"{name}[{i}] ({part})" for i, part in enumerate(SCORE_PARTS)]
    for part_name, score in zip(parts, scores):
        check_floating(part_name, score)
        check_ndim(part_name, score, 1, "[B] (one score per pair)")
        check_nonempty(part_name, score, 0, "pairs")
    for part_name, score in zip(parts[1:], scores[1:]):
        check_same_shape(parts[0], scores[0], part_name, score)
        check_same_device_dtype(parts[0], scores[0], part_name, score)
    return scores[0], scores[1], scores[2]


def bigbigan_losses(real_scores: Sequence[Tensor], fake_scores: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    r"""BigBiGAN's discriminator loss (hinge) and encoder-generator loss (un-hinged), batch means.

    Shapes:
        real_scores: ``(s_x, s_z, s_xz)``, each ``[B]``: the discriminator's scores on real pairs
                     :math:`(x, \hat z = E(x))`.
        fake_scores: ``(s_x, s_z, s_xz)``, each ``[B']``: its scores on generated pairs
                     :math:`(\hat x = G(z), z)`. ``B'`` may differ from ``B``.
        returns:     ``(discriminator_loss, encoder_generator_loss)``, two scalars (0-dim tensors).

    The discriminator has three heads (the paper's :math:`F`, :math:`H`, :math:`J`, written
    :math:`D_x`, :math:`D_z`, :math:`D_{xz}` in the course, ``docs/notation.md``):
    :math:`s_x = \theta_x^\top D_x(x)` looks at the image alone, :math:`s_z = \theta_z^\top D_z(z)`
    at the latent alone, and :math:`s_{xz} = \theta_{xz}^\top D_{xz}(D_x(x), D_z(z))` at the pair. With the hinge
    :math:`h(t) = \max(0, 1 - t)` and labels :math:`y = +1` for real pairs, :math:`y = -1` for
    generated pairs, the per-pair losses are

    .. math::

        \ell_D(x, z, y) = h(y\,s_x) + h(y\,s_z) + h(y\,s_{xz}),\qquad
        \ell_{EG}(x, z, y) = y\,(s_x + s_z + s_{xz}),

    and the two losses of a step average them over each batch:

    .. math::

        \mathcal{L}_D = \frac{1}{B}\sum_{i=1}^{B}\ell_D(x_i, \hat z_i, +1)
                      + \frac{1}{B'}\sum_{j=1}^{B'}\ell_D(\hat x_j, z_j, -1),\qquad
        \mathcal{L}_{EG} = \frac{1}{B}\sum_{i=1}^{B}\ell_{EG}(x_i, \hat z_i, +1)
                         + \frac{1}{B'}\sum_{j=1}^{B'}\ell_{EG}(\hat x_j, z_j, -1).

    The discriminator minimises :math:`\mathcal{L}_D`; the encoder and the generator minimise
    :math:`\mathcal{L}_{EG}`, i.e. they push the scores of real pairs down and those of generated
    pairs up. :math:`\mathcal{L}_{EG}` is not hinged: its gradient never vanishes, however
    confident the discriminator is. The term :math:`s_x` of real pairs depends on neither E nor G;
    it is kept so that the formula matches the paper, and it adds no gradient to E or G.

    References:
        Donahue and Simonyan, "Large Scale Adversarial Representation Learning", NeurIPS 2019,
        Section 2 (the unary scores :math:`s_x, s_z`, the joint score :math:`s_{xz}` and the losses
        :math:`\ell_D`, :math:`\ell_{EG}` above). The hinge follows Lim and Ye, "Geometric GAN",
        2017, as used by BigGAN (Brock, Donahue and Simonyan, ICLR 2019).
    """
    real = _check_scores("real_scores", real_scores)
    fake = _check_scores("fake_scores", fake_scores)
    check_same_device_dtype("real_scores[0] (s_x)", real[0], "fake_scores[0] (s_x)", fake[0])

    # 1. Stack the three parts: one row per part, one column per pair.
    real_stack = torch.stack(real)                                            # [3, B]
    fake_stack = torch.stack(fake)                                            # [3, B']
    # 2. Discriminator: hinge each part with its label (+1 real, -1 generated), sum the parts,
    #    average over the pairs of each batch.
    real_hinge = torch.relu(1.0 - real_stack).sum(0).mean()                  # h(+s)
    fake_hinge = torch.relu(1.0 + fake_stack).sum(0).mean()                  # h(-s)
    discriminator_loss = real_hinge + fake_hinge
    # 3. Encoder and generator: the signed score sum, no hinge.
    encoder_generator_loss = real_stack.sum(0).mean() - fake_stack.sum(0).mean()
    return discriminator_loss, encoder_generator_loss
