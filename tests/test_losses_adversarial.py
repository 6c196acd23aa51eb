"""Tests of ssl_course.losses.adversarial (BigBiGAN's losses).

References: a literal loop over the pairs and the three score parts, written from the paper's
per-pair losses (float64, values and gradients), plus limiting cases derived by hand.
"""

from __future__ import annotations

import pytest
import torch

from ssl_course.losses import bigbigan_losses

F64 = torch.float64


def _loop_losses(real, fake):
    """Per pair: l_D = sum_parts max(0, 1 - y s), l_EG = y * sum_parts s; then a mean per batch."""
    def hinge(t):
        return t if t > 0 else t * 0.0            # max(0, t), keeps the graph for autograd

    d_real = e_real = 0.0
    for i in range(real[0].shape[0]):
        for part in range(3):
            d_real = d_real + hinge(1.0 - real[part][i])
            e_real = e_real + real[part][i]
    d_fake = e_fake = 0.0
    for j in range(fake[0].shape[0]):
        for part in range(3):
            d_fake = d_fake + hinge(1.0 + fake[part][j])
            e_fake = e_fake - fake[part][j]
    b, b_fake = real[0].shape[0], fake[0].shape[0]
    return d_real / b + d_fake / b_fake, e_real / b + e_fake / b_fake


def _scores(batch, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return tuple((scale * torch.randn(batch, generator=g, dtype=F64)).requires_grad_() for _ in range(3))


@pytest.mark.parametrize("batch, fake_batch", [(7, 7), (5, 9), (1, 1)])
def test_matches_loop_values_and_gradients(batch, fake_batch):
    real, fake = _scores(batch, 0), _scores(fake_batch, 1)
    d_loss, eg_loss = bigbigan_losses(real, fake)
    d_loop, eg_loop = _loop_losses(real, fake)
    torch.testing.assert_close(d_loss, d_loop, rtol=0, atol=1e-12)
    torch.testing.assert_close(eg_loss, eg_loop, rtol=0, atol=1e-12)
    for ours, loop in ((d_loss, d_loop), (eg_loss, eg_loop)):
        grads = torch.autograd.grad(ours, real + fake, retain_graph=True)
        loop_grads = torch.autograd.grad(loop, real + fake, retain_graph=True)
        for g, lg in zip(grads, loop_grads):
            torch.testing.assert_close(g, lg, rtol=0, atol=1e-12)
    assert d_loss.dtype == F64 and d_loss.dim() == 0 and eg_loss.dim() == 0


def test_limiting_cases():
    ones = torch.ones(4, dtype=F64)
    # A discriminator that scores real pairs >= 1 and generated ones <= -1 has zero hinge loss ...
    d_loss, eg_loss = bigbigan_losses((2 * ones,) * 3, (-3 * ones,) * 3)
    assert d_loss.item() == 0.0
    # ... while E and G pay the full signed score: 3 parts x (2 - (-3)).
    assert eg_loss.item() == pytest.approx(15.0)
    # At the game's equilibrium, scores 0 everywhere: each of the 6 hinges costs 1, E and G pay 0.
    d_loss, eg_loss = bigbigan_losses((0 * ones,) * 3, (0 * ones,) * 3)
    assert d_loss.item() == pytest.approx(6.0) and eg_loss.item() == 0.0


def test_hinge_stops_pushing_but_encoder_generator_loss_does_not():
    """Confident scores give D no gradient (hinge flat), but E and G still get one (un-hinged)."""
    real = tuple(torch.full((3,), 5.0, dtype=F64, requires_grad=True) for _ in range(3))
    fake = tuple(torch.full((3,), -5.0, dtype=F64, requires_grad=True) for _ in range(3))
    d_loss, eg_loss = bigbigan_losses(real, fake)
    assert all(g.abs().sum() == 0 for g in torch.autograd.grad(d_loss, real + fake, retain_graph=True))
    assert all((g.abs() - 1 / 3).abs().max() < 1e-12 for g in torch.autograd.grad(eg_loss, real + fake))


def test_works_in_float32():
    real, fake = _scores(6, 2), _scores(6, 3)
    d64, eg64 = bigbigan_losses(real, fake)
    d32, eg32 = bigbigan_losses(tuple(s.float() for s in real), tuple(s.float() for s in fake))
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), d64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eg32.double(), eg64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("real, fake, message", [
    ((torch.zeros(3),) * 2, (torch.zeros(3),) * 3, r"real_scores must be a tuple \(s_x, s_z, s_xz\)"),
    (torch.zeros(3, 3), (torch.zeros(3),) * 3, "real_scores must be a tuple"),
    ((torch.zeros(3),) * 3, (torch.zeros(3, 1),) * 3, r"squeeze\(-1\)"),
    ((torch.zeros(3),) * 3, (torch.zeros(3, dtype=torch.long),) * 3, "floating-point"),
    ((torch.zeros(3), torch.zeros(4), torch.zeros(3)), (torch.zeros(3),) * 3, "same shape"),
    ((torch.zeros(0),) * 3, (torch.zeros(3),) * 3, "empty"),
    ((torch.zeros(3),) * 3, (torch.zeros(3, dtype=F64),) * 3, "same dtype"),
])
def test_bad_inputs_are_explained(real, fake, message):
    with pytest.raises(ValueError, match=message):
        bigbigan_losses(real, fake)
