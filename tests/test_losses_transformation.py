"""Tests for ssl_course.losses.transformation: values and gradients against literal loops (float64),
limiting cases, and bad inputs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_course.losses import (
    aet_ensemble_loss,
    aet_loss,
    avt_gaussian_nll,
    skip_value_checks,
    transformation_consistency_loss,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().double().clone().requires_grad_(True)


def assert_same_value_and_grads(ours, loop, inputs_ours, inputs_loop):
    torch.testing.assert_close(ours.detach(), loop.detach(), rtol=1e-10, atol=1e-12)
    grads_ours = torch.autograd.grad(ours, inputs_ours)
    grads_loop = torch.autograd.grad(loop, inputs_loop)
    for a, b in zip(grads_ours, grads_loop):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


# ---- literal loops -------------------------------------------------------------------------
def loop_aet(pred, true):
    n, p = pred.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        for j in range(p):
            total = total + (pred[i, j] - true[i, j]) ** 2
    return total / (n * p)


def loop_kl(logits, q):
    n, k = logits.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        norm = sum(torch.exp(logits[i, c]) for c in range(k))
        for c in range(k):
            if q[i, c] > 0:
                total = total + q[i, c] * (torch.log(q[i, c]) - (logits[i, c] - torch.log(norm)))
    return total / n


def loop_gaussian_nll(mean, log_var, true):
    n, p = mean.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        for j in range(p):
            var = torch.exp(log_var[i, j])
            total = total + 0.5 * (math.log(2 * math.pi) + torch.log(var) + (true[i, j] - mean[i, j]) ** 2 / var)
    return total / n


# ---- values and gradients ------------------------------------------------------------------
def test_aet_loss_matches_loop():
    pred, true = torch.randn(5, 8, generator=gen(0)), torch.rand(5, 8, generator=gen(1)) * 2 - 1
    a, b = leaf(pred), leaf(pred)
    assert_same_value_and_grads(aet_loss(a, true.double()), loop_aet(b, true.double()), [a], [b])
    assert torch.allclose(aet_loss(pred, true), F.mse_loss(pred, true))       # the official nn.MSELoss


def test_aet_ensemble_is_the_weighted_sum_of_family_losses():
    sizes, weights = (8, 6, 5, 4, 4), (1.0, 0.75, 0.5, 0.2, 0.05)
    preds = [torch.randn(4, p, generator=gen(p), dtype=torch.float64) for p in sizes]
    trues = [torch.randn(4, p, generator=gen(10 + p), dtype=torch.float64) for p in sizes]
    ours_in, loop_in = [leaf(p) for p in preds], [leaf(p) for p in preds]
    total, per_family = aet_ensemble_loss(ours_in, trues, weights)
    loop_total = sum(w * loop_aet(p, t) for w, p, t in zip(weights, loop_in, trues))
    assert_same_value_and_grads(total, loop_total, ours_in, loop_in)
    assert per_family.shape == (5,)
    # a zero weight switches a family off: its prediction gets no gradient
    total, _ = aet_ensemble_loss(ours_in[:2], trues[:2], [1.0, 0.0])
    grads = torch.autograd.grad(total, ours_in[:2])
    assert grads[1].abs().max() == 0 and grads[0].abs().max() > 0


def test_consistency_matches_loop_and_the_official_kl_div():
    logits = torch.randn(6, 5, generator=gen(2)) * 2
    q = torch.softmax(torch.randn(6, 5, generator=gen(3)) * 3, 1).double()
    q[0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)                 # 0 log 0 = 0
    a, b = leaf(logits), leaf(logits)
    ours = transformation_consistency_loss(a, q)
    assert_same_value_and_grads(ours, loop_kl(b, q), [a], [b])
    official = F.kl_div(F.log_softmax(logits.double(), 1), q, reduction="batchmean")
    torch.testing.assert_close(ours.detach(), official)


def test_consistency_is_zero_only_when_the_prediction_equals_the_target():
    q = torch.softmax(torch.randn(4, 3, generator=gen(4), dtype=torch.float64), 1)
    assert transformation_consistency_loss(q.log(), q).abs() < 1e-12
    assert transformation_consistency_loss(torch.zeros(4, 3, dtype=torch.float64), q) > 0


def test_avt_nll_matches_loop_and_reduces_to_aet_with_a_fixed_variance():
    mean, true = torch.randn(5, 6, generator=gen(5)), torch.randn(5, 6, generator=gen(6))
    log_var = torch.randn(5, 6, generator=gen(7)) * 0.5
    a, b, c, d = leaf(mean), leaf(log_var), leaf(mean), leaf(log_var)
    assert_same_value_and_grads(avt_gaussian_nll(a, b, true.double()), loop_gaussian_nll(c, d, true.double()),
                                [a, b], [c, d])
    # sigma^2 = 1/2: NLL = P * MSE + P/2 * log(pi)
    fixed = torch.full((5, 6), math.log(0.5), dtype=torch.float64)
    nll = avt_gaussian_nll(mean.double(), fixed, true.double())
    torch.testing.assert_close(nll, 6 * aet_loss(mean.double(), true.double()) + 3 * math.log(math.pi))


def test_aet_loss_falls_when_a_regressor_is_trained():
    """A linear decoder on [z, z~] can learn to read a shift from two noisy views."""
    torch.manual_seed(0)
    theta = torch.rand(256, 2) * 2 - 1
    z = torch.randn(256, 16)
    z_t = z.clone()
    z_t[:, :2] += theta                                                        # the shift lives in the representation
    decoder = torch.nn.Linear(32, 2)
    optimiser = torch.optim.SGD(decoder.parameters(), lr=0.1)
    first = aet_loss(decoder(torch.cat([z, z_t], 1)), theta).item()
    for _ in range(200):
        loss = aet_loss(decoder(torch.cat([z, z_t], 1)), theta)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * first


# ---- bad inputs ----------------------------------------------------------------------------
def test_bad_inputs_say_what_to_fix():
    with pytest.raises(ValueError, match="same shape"):
        aet_loss(torch.zeros(4, 6), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="floating"):
        aet_loss(torch.zeros(4, 6, dtype=torch.long), torch.zeros(4, 6))
    with pytest.raises(ValueError, match="one entry per family"):
        aet_ensemble_loss([torch.zeros(2, 4)], [torch.zeros(2, 4)], [1.0, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        aet_ensemble_loss([torch.zeros(2, 4)], [torch.zeros(2, 4)], [-1.0])
    with pytest.raises(ValueError, match="logits"):
        transformation_consistency_loss(torch.zeros(2, 3), torch.tensor([[2.0, -1.0, 0.0]] * 2))
    with pytest.raises(ValueError, match="sum to 1"):
        transformation_consistency_loss(torch.zeros(2, 3), torch.full((2, 3), 0.5))
    with skip_value_checks():                                                   # a GPU step reads nothing back
        transformation_consistency_loss(torch.zeros(2, 3), torch.full((2, 3), 0.5))
