"""Solutions to the exercises of notebook 07 (BiGAN → BigBiGAN).

Plain PyTorch, one idea per line, no input validation: what a learner is expected to write.
Check each with its checker::

    from ssl_course.exercises import check_bigbigan_discriminator_loss, check_bigbigan_encoder_generator_loss
    check_bigbigan_discriminator_loss(discriminator_loss)   # prints "✓ correct on 6 inputs"
"""

from __future__ import annotations

import torch


def discriminator_loss(real_scores, fake_scores):
    """Hinge loss of D: real pairs pushed to scores >= +1, generated pairs to <= -1, all three parts."""
    real = sum(torch.relu(1 - s) for s in real_scores)      # [B]: one hinge per part, summed
    fake = sum(torch.relu(1 + s) for s in fake_scores)      # [B']
    return real.mean() + fake.mean()


def encoder_generator_loss(real_scores, fake_scores):
    """E and G lower the scores of real pairs and raise those of generated pairs; no hinge."""
    return sum(real_scores).mean() - sum(fake_scores).mean()
