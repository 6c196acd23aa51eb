"""Tests for ssl_course.losses.semi_supervised.

Every loss is compared, values and gradients, with a literal python-loop implementation of
its formula (float64, one scalar at a time), plus property and bad-input tests.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ssl_course.losses.semi_supervised import (
    fixmatch_loss,
    me_max_regularizer,
    mixmatch_guess_labels,
    mixmatch_loss,
    mixup,
    paws,
    s4l_loss,
    sharpen,
    snn,
    soft_cross_entropy,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
DTYPES = [torch.float32, torch.float64]


def tolerance(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-11}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    torch.testing.assert_close(actual.detach().cpu().double(), expected.detach().cpu().double(), **tolerance(dtype))


def leaf(tensor: torch.Tensor, device="cpu", dtype=torch.float64) -> torch.Tensor:
    """A fresh leaf copy that records gradients (never aliases the input)."""
    return tensor.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_probabilities(rows: int, classes: int, generator: torch.Generator, scale: float = 1.5) -> torch.Tensor:
    return torch.softmax(torch.randn(rows, classes, generator=generator, dtype=torch.float64) * scale, dim=1)


# ----------------------------------------------------------------------------------------
# Literal loop implementations of the formulas (float64, scalar by scalar, autograd-able)
# ----------------------------------------------------------------------------------------
def loop_softmax(values: list) -> list:
    largest = max(float(v.detach()) for v in values)
    exps = [torch.exp(v - largest) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def loop_sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    rows = []
    for i in range(p.shape[0]):
        powered = [p[i, k] ** (1.0 / T) for k in range(p.shape[1])]
        total = sum(powered)
        rows.append(torch.stack([value / total for value in powered]))
    return torch.stack(rows)


def loop_normalise(vector: torch.Tensor) -> torch.Tensor:
    norm = torch.sqrt(sum(vector[d] ** 2 for d in range(vector.shape[0])))
    return torch.stack([vector[d] / norm for d in range(vector.shape[0])])


def loop_snn(query, supports, labels, tau):
    rows = []
    normalised_supports = [loop_normalise(supports[m]) for m in range(supports.shape[0])]
    for i in range(query.shape[0]):
        q = loop_normalise(query[i])
        similarities = [sum(q[d] * s[d] for d in range(q.shape[0])) / tau for s in normalised_supports]
        weights = loop_softmax(similarities)
        rows.append(torch.stack([
            sum(weights[m] * labels[m, k] for m in range(labels.shape[0])) for k in range(labels.shape[1])
        ]))
    return torch.stack(rows)


def loop_me_max(probs, T):
    sharp = loop_sharpen(probs, T)
    n, classes = sharp.shape
    mean = [sum(sharp[i, k] for i in range(n)) / n for k in range(classes)]
    return sum(m * torch.log(m) for m in mean)


def loop_paws_targets(target_views, supports, labels, tau, T, multicrop):
    with torch.no_grad():
        targets = loop_sharpen(loop_snn(target_views, supports, labels, tau), T)
        rows = [targets[i] for i in range(targets.shape[0])]
        if multicrop:
            batch = targets.shape[0] // 2
            for _crop in range(multicrop):
                for b in range(batch):
                    rows.append(0.5 * (targets[b] + targets[batch + b]))
        floored = [[0.0 if float(v) < 1e-4 else float(v) for v in row] for row in rows]
        return torch.tensor(floored, dtype=torch.float64)


def loop_paws(anchors, target_views, supports, labels, tau, T, me_max, multicrop, target_supports=None):
    probs = loop_snn(anchors, supports, labels, tau)
    targets = loop_paws_targets(target_views, supports if target_supports is None else target_supports,
                                labels, tau, T, multicrop)
    n, classes = probs.shape
    ce = sum(-sum(targets[i, k] * torch.log(probs[i, k]) for k in range(classes)) for i in range(n)) / n
    reg = loop_me_max(probs, T) if me_max else torch.zeros((), dtype=torch.float64)
    return ce, reg, targets


def loop_log_softmax_row(row):
    largest = max(float(v.detach()) for v in row)
    log_total = torch.log(sum(torch.exp(v - largest) for v in row)) + largest
    return [v - log_total for v in row]


# ----------------------------------------------------------------------------------------
# sharpen
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [0.25, 0.5, 2.0])
def test_sharpen_matches_loop_values_and_gradients(device, dtype, T):
    p = random_probabilities(5, 4, make_generator(0))
    ours_input = leaf(p, device, dtype)
    loop_input = leaf(p)
    ours = sharpen(ours_input, T)
    reference = loop_sharpen(loop_input, T)
    assert ours.dtype == dtype and ours.device.type == device
    assert_close(ours, reference, dtype)
    weights = torch.randn(5, 4, generator=make_generator(1), dtype=torch.float64)
    (ours * weights.to(device=device, dtype=dtype)).sum().backward()
    (reference * weights).sum().backward()
    assert_close(ours_input.grad, loop_input.grad, dtype)


def test_sharpen_properties():
    p = random_probabilities(20, 6, make_generator(2))
    for T in (0.1, 0.5, 1.0, 3.0):
        sharpened = sharpen(p, T)
        torch.testing.assert_close(sharpened.sum(dim=1), torch.ones(20, dtype=torch.float64))
        assert torch.equal(sharpened.argmax(dim=1), p.argmax(dim=1))
    # T = 1 is the identity on normalised rows.
    torch.testing.assert_close(sharpen(p, 1.0), p)
    # T < 1 lowers the entropy, T -> 0 tends to one-hot at the argmax.
    entropy = lambda q: -(q * q.log()).sum(dim=1)  # noqa: E731
    assert bool((entropy(sharpen(p, 0.5)) < entropy(p)).all())
    one_hot = F.one_hot(p.argmax(dim=1), 6).double()
    assert (sharpen(p, 1e-3) - one_hot).abs().max() < 1e-6
    # Stable for tiny T in float32 where p ** (1 / T) would underflow to 0 / 0.
    tiny_t = sharpen(p.float(), 1e-4)
    assert torch.isfinite(tiny_t).all()
    torch.testing.assert_close(tiny_t, one_hot.float())


def test_sharpen_handles_exact_zeros():
    p = torch.tensor([[0.0, 0.3, 0.7], [1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    out = sharpen(p, 0.5)
    torch.testing.assert_close(out.detach(), loop_sharpen(p.detach(), 0.5))
    out.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_sharpen_bad_inputs():
    p = random_probabilities(3, 4, make_generator(3))
    with pytest.raises(ValueError, match="T must be > 0"):
        sharpen(p, 0.0)
    with pytest.raises(ValueError, match="T must be > 0"):
        sharpen(p, -1.0)
    with pytest.raises(ValueError, match=r"2-D with shape \[N, C\]"):
        sharpen(p[0], 0.5)
    with pytest.raises(ValueError, match="floating-point"):
        sharpen(torch.ones(3, 4, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="negative entry.*logits"):
        sharpen(torch.randn(3, 4, generator=make_generator(4)), 0.5)


# ----------------------------------------------------------------------------------------
# snn
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_snn_matches_loop_values_and_gradients(device, dtype):
    g = make_generator(10)
    query = torch.randn(4, 3, generator=g, dtype=torch.float64) * 3
    supports = torch.randn(6, 3, generator=g, dtype=torch.float64)
    labels = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).double() * 0.9 + 0.1 / 3  # smoothed
    tau = 0.2
    q_ours = leaf(query, device, dtype)
    s_ours = leaf(supports, device, dtype)
    q_loop = leaf(query)
    s_loop = leaf(supports)
    ours = snn(q_ours, s_ours, labels.to(device=device, dtype=dtype), tau)
    reference = loop_snn(q_loop, s_loop, labels, tau)
    assert ours.shape == (4, 3) and ours.dtype == dtype
    assert_close(ours, reference, dtype)
    assert_close(ours.sum(dim=1), torch.ones(4, dtype=torch.float64), dtype)
    weights = torch.randn(4, 3, generator=g, dtype=torch.float64)
    (ours * weights.to(device=device, dtype=dtype)).sum().backward()
    (reference * weights).sum().backward()
    assert_close(q_ours.grad, q_loop.grad, dtype)
    assert_close(s_ours.grad, s_loop.grad, dtype)


def test_snn_is_scale_invariant_and_recovers_nearest_support():
    g = make_generator(11)
    supports = torch.eye(3, dtype=torch.float64)
    labels = torch.eye(3, dtype=torch.float64)
    query = supports * torch.tensor([[5.0], [0.2], [30.0]], dtype=torch.float64)  # same directions, other norms
    probs = snn(query, supports, labels, temperature=0.01)
    torch.testing.assert_close(probs, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
    random_query = torch.randn(5, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(snn(random_query, supports, labels), snn(7 * random_query, 0.1 * supports, labels))


def test_snn_bad_inputs():
    query, supports, labels = torch.randn(4, 3), torch.randn(6, 3), torch.eye(3).repeat(2, 1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        snn(query, supports, labels, temperature=0.0)
    with pytest.raises(ValueError, match="dimension D=3 but support_embeddings has D=5"):
        snn(query, torch.randn(6, 5), labels)
    with pytest.raises(ValueError, match="one label row per support"):
        snn(query, supports, torch.eye(3))
    with pytest.raises(ValueError, match="one_hot"):
        snn(query, supports, torch.tensor([0, 1, 2, 0, 1, 2]))
    with pytest.raises(ValueError, match="must sum to 1"):
        snn(query, supports, labels * 2)
    with pytest.raises(ValueError, match="dtype"):
        snn(query.double(), supports, labels)
    with pytest.raises(ValueError, match=r"2-D with shape \[N, D\]"):
        snn(query[0], supports, labels)


# ----------------------------------------------------------------------------------------
# ME-MAX
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_me_max_matches_loop_values_and_gradients(dtype):
    probs = random_probabilities(6, 4, make_generator(20))
    ours_input = leaf(probs, "cpu", dtype)
    loop_input = leaf(probs)
    ours = me_max_regularizer(ours_input, 0.25)
    reference = loop_me_max(loop_input, 0.25)
    assert ours.ndim == 0
    assert_close(ours, reference, dtype)
    ours.backward()
    reference.backward()
    assert_close(ours_input.grad, loop_input.grad, dtype)


def test_me_max_minimum_is_minus_log_k_at_uniform_mean():
    classes = 5
    # One-hot predictions cycling through the classes: the mean is uniform.
    uniform_mean = F.one_hot(torch.arange(3 * classes) % classes, classes).double()
    minimum = torch.tensor(-math.log(classes), dtype=torch.float64)
    torch.testing.assert_close(me_max_regularizer(uniform_mean, 0.25), minimum)
    # Any other batch is above the minimum; a collapsed batch reaches the maximum 0.
    for seed in range(5):
        probs = random_probabilities(8, classes, make_generator(seed))
        assert me_max_regularizer(probs, 0.25) >= -math.log(classes) - 1e-12
    collapsed = F.one_hot(torch.zeros(4, dtype=torch.long), classes).double()
    torch.testing.assert_close(me_max_regularizer(collapsed, 0.25), torch.tensor(0.0, dtype=torch.float64))


# ----------------------------------------------------------------------------------------
# PAWS
# ----------------------------------------------------------------------------------------
def paws_inputs(seed: int, batch: int, multicrop: int, dim: int = 3, classes: int = 3, per_class: int = 2):
    g = make_generator(seed)
    anchors = torch.randn((2 + multicrop) * batch, dim, generator=g, dtype=torch.float64)
    targets = torch.randn(2 * batch, dim, generator=g, dtype=torch.float64)
    supports = torch.randn(classes * per_class, dim, generator=g, dtype=torch.float64)
    labels = F.one_hot(torch.arange(classes * per_class) % classes, classes).double()
    return anchors, targets, supports, labels


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multicrop", [0, 2])
def test_paws_matches_loop_values_and_gradients(device, dtype, multicrop):
    anchors, targets, supports, labels = paws_inputs(30 + multicrop, batch=2, multicrop=multicrop)
    a_ours = leaf(anchors, device, dtype)
    s_ours = leaf(supports, device, dtype)
    t_ours = leaf(targets, device, dtype)
    a_loop = leaf(anchors)
    s_loop = leaf(supports)
    ce, reg = paws(a_ours, t_ours, s_ours, labels.to(device=device, dtype=dtype), temperature=0.1,
                   sharpen_temperature=0.25, multicrop=multicrop)
    ce_loop, reg_loop, loop_targets = loop_paws(a_loop, targets, s_loop, labels, 0.1, 0.25, True, multicrop)
    # The 1e-4 target floor is exercised by these inputs.
    assert int((loop_targets == 0).sum()) > 0
    assert_close(ce, ce_loop, dtype)
    assert_close(reg, reg_loop, dtype)
    (ce + reg).backward()
    (ce_loop + reg_loop).backward()
    assert_close(a_ours.grad, a_loop.grad, dtype)
    assert_close(s_ours.grad, s_loop.grad, dtype)
    assert t_ours.grad is None  # targets are computed without gradient


def test_paws_multicrop_targets_are_mean_of_the_two_global_targets():
    """Small crop j of image b gets 0.5 * (target of view 1 + target of view 2) of image b."""
    batch, multicrop, classes = 3, 2, 4
    g = make_generator(40)
    targets_in = torch.randn(2 * batch, 5, generator=g, dtype=torch.float64)
    supports = torch.randn(8, 5, generator=g, dtype=torch.float64)
    labels = F.one_hot(torch.arange(8) % classes, classes).double()
    expected = loop_paws_targets(targets_in, supports, labels, 0.1, 0.25, multicrop)
    assert expected.shape == ((2 + multicrop) * batch, classes)
    # The average uses the global targets BEFORE the 1e-4 floor (as the official code).
    global_targets = loop_sharpen(loop_snn(targets_in, supports, labels, 0.1), 0.25)
    for crop in range(multicrop):
        for b in range(batch):
            # small crop `crop` of image b sits at row 2B + crop*B + b
            row = expected[2 * batch + crop * batch + b]
            manual = 0.5 * (global_targets[b] + global_targets[batch + b])
            manual = torch.where(manual < 1e-4, torch.zeros_like(manual), manual)
            torch.testing.assert_close(row, manual)
    # The library's cross-entropy with these targets equals the loop CE for arbitrary anchors.
    anchors = torch.randn((2 + multicrop) * batch, 5, generator=g, dtype=torch.float64)
    ce, _ = paws(anchors, targets_in, supports, labels, multicrop=multicrop, me_max=False)
    probs = loop_snn(anchors, supports, labels, 0.1)
    manual_ce = -(expected * probs.log()).sum(dim=1).mean()
    torch.testing.assert_close(ce, manual_ce)


def test_paws_me_max_off_and_separate_target_supports():
    anchors, targets, supports, labels = paws_inputs(50, batch=2, multicrop=0)
    ce, reg = paws(anchors, targets, supports, labels, me_max=False)
    assert reg.ndim == 0 and float(reg) == 0.0 and reg.dtype == anchors.dtype
    other_supports = torch.randn_like(supports)
    ce_other, _ = paws(anchors, targets, supports, labels, me_max=False, target_support_embeddings=other_supports)
    ce_loop, _, _ = loop_paws(anchors, targets, supports, labels, 0.1, 0.25, False, 0, target_supports=other_supports)
    torch.testing.assert_close(ce_other, ce_loop)
    assert not torch.isclose(ce, ce_other)


def test_paws_targets_may_live_in_another_space_than_anchors():
    # As in paws_train.py: anchors from one head (D=3), targets and target supports from another (D=5).
    anchors, _, supports, labels = paws_inputs(55, batch=2, multicrop=0)
    g = make_generator(56)
    target_views = torch.randn(4, 5, generator=g, dtype=torch.float64)
    target_supports = torch.randn(6, 5, generator=g, dtype=torch.float64)
    ce, reg = paws(anchors, target_views, supports, labels, target_support_embeddings=target_supports)
    ce_loop, reg_loop, _ = loop_paws(anchors, target_views, supports, labels, 0.1, 0.25, True, 0,
                                     target_supports=target_supports)
    torch.testing.assert_close(ce, ce_loop)
    torch.testing.assert_close(reg, reg_loop)
    with pytest.raises(ValueError, match="dimension"):
        paws(anchors, target_views, supports, labels)  # target views (D=5) vs supports (D=3)


def test_paws_loss_falls_when_training_free_embeddings():
    torch.manual_seed(0)
    batch, dim, classes = 16, 8, 4
    views = torch.nn.Parameter(torch.randn(2 * batch, dim))
    supports = torch.nn.Parameter(torch.randn(2 * classes, dim))
    labels = F.one_hot(torch.arange(2 * classes) % classes, classes).float()
    optimizer = torch.optim.Adam([views, supports], lr=0.05)
    losses = []
    for _ in range(60):
        # Swap the two global views: view 1 is pulled towards view 2's assignment and vice versa.
        target_views = torch.cat([views[batch:], views[:batch]]).detach()
        ce, reg = paws(views, target_views, supports, labels)
        loss = ce + reg
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5, losses
    assert math.isfinite(losses[-1])


def test_paws_bad_inputs():
    anchors, targets, supports, labels = paws_inputs(60, batch=2, multicrop=2)
    with pytest.raises(ValueError, match=r"anchor_views must have \(2 \+ multicrop\) \* B = 8 rows, got 6"):
        paws(anchors[:6], targets, supports, labels, multicrop=2)
    with pytest.raises(ValueError, match="odd number of rows"):
        paws(anchors, targets[:3], supports, labels, multicrop=2)
    with pytest.raises(ValueError, match="same number of rows"):
        paws(anchors, targets, supports, labels, multicrop=0)
    with pytest.raises(ValueError, match="multicrop must be an int >= 0"):
        paws(anchors, targets, supports, labels, multicrop=-1)
    with pytest.raises(ValueError, match="sharpen_temperature must be > 0"):
        paws(anchors, targets, supports, labels, multicrop=2, sharpen_temperature=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        paws(anchors, targets, supports, labels, multicrop=2, temperature=-0.1)
    with pytest.raises(ValueError, match="floating-point"):
        paws(anchors.long(), targets, supports, labels, multicrop=2)


# ----------------------------------------------------------------------------------------
# soft cross-entropy and MixMatch
# ----------------------------------------------------------------------------------------
def loop_soft_cross_entropy(logits, targets):
    total = 0
    for i in range(logits.shape[0]):
        log_probs = loop_log_softmax_row([logits[i, k] for k in range(logits.shape[1])])
        total = total - sum(targets[i, k] * log_probs[k] for k in range(logits.shape[1]))
    return total / logits.shape[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_cross_entropy_matches_loop(dtype):
    g = make_generator(70)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    targets = random_probabilities(5, 4, g)
    ours_logits = leaf(logits, "cpu", dtype)
    ours_targets = leaf(targets, "cpu", dtype)
    loop_logits = leaf(logits)
    ours = soft_cross_entropy(ours_logits, ours_targets)
    reference = loop_soft_cross_entropy(loop_logits, targets)
    assert_close(ours, reference, dtype)
    ours.backward()
    reference.backward()
    assert_close(ours_logits.grad, loop_logits.grad, dtype)
    assert ours_targets.grad is None  # targets are constants
    # With one-hot targets it is the ordinary cross-entropy.
    hard = torch.tensor([0, 3, 1, 2, 2])
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(hard, 4).double()), F.cross_entropy(logits, hard))


def test_soft_cross_entropy_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        soft_cross_entropy(torch.randn(3, 4), torch.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="did you pass logits"):
        soft_cross_entropy(torch.randn(3, 4), torch.randn(3, 4))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mixmatch_guess_labels_matches_loop(device, dtype):
    g = make_generator(80)
    logits = torch.randn(2, 5, 4, generator=g, dtype=torch.float64) * 2  # K=2 augmentations
    expected_rows = []
    for b in range(5):
        per_aug = [loop_softmax([logits[k, b, c] for c in range(4)]) for k in range(2)]
        mean = [sum(per_aug[k][c] for k in range(2)) / 2 for c in range(4)]
        powered = [m ** 2.0 for m in mean]  # 1 / T with T = 0.5
        expected_rows.append(torch.stack([v / sum(powered) for v in powered]))
    expected = torch.stack(expected_rows)
    ours_logits = leaf(logits, device, dtype)
    ours = mixmatch_guess_labels(ours_logits, T=0.5)
    assert not ours.requires_grad  # no gradient through the guess
    assert_close(ours, expected, dtype)
    from_list = mixmatch_guess_labels([ours_logits[0], ours_logits[1]], T=0.5)
    assert_close(from_list, expected, dtype)


def test_mixmatch_guess_labels_bad_inputs():
    with pytest.raises(ValueError, match=r"\[n_a, N, C\]"):
        mixmatch_guess_labels(torch.randn(5, 4))
    with pytest.raises(ValueError, match="same shape"):
        mixmatch_guess_labels([torch.randn(5, 4), torch.randn(6, 4)])
    with pytest.raises(ValueError, match="at least one"):
        mixmatch_guess_labels([])
    with pytest.raises(ValueError, match="T must be > 0"):
        mixmatch_guess_labels(torch.randn(2, 5, 4), T=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lam", [0.3, 0.8, 0.5, 0.0])
def test_mixup_matches_loop_with_lambda_prime(device, dtype, lam):
    g = make_generator(90)
    x1 = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64)
    p1 = F.one_hot(torch.tensor([0, 2, 1]), 3).double()
    p2 = random_probabilities(3, 3, g)
    lam_prime = max(lam, 1 - lam)
    assert lam_prime >= 0.5
    expected_x = torch.empty_like(x1)
    for index in range(x1.numel()):
        expected_x.view(-1)[index] = lam_prime * x1.view(-1)[index] + (1 - lam_prime) * x2.view(-1)[index]
    expected_p = torch.tensor([[lam_prime * p1[i, k] + (1 - lam_prime) * p2[i, k] for k in range(3)] for i in range(3)],
                              dtype=torch.float64)
    to = dict(device=device, dtype=dtype)
    x1_ours = leaf(x1, device, dtype)
    mixed_x, mixed_p = mixup(x1_ours, p1.to(**to), x2.to(**to), p2.to(**to), lam)
    assert_close(mixed_x, expected_x, dtype)
    assert_close(mixed_p, expected_p, dtype)
    assert_close(mixed_p.sum(dim=1), torch.ones(3, dtype=torch.float64), dtype)
    mixed_x.sum().backward()
    assert_close(x1_ours.grad, torch.full_like(x1, lam_prime), dtype)
    # The mixed sample stays at least as close to x1 as to x2.
    assert bool(((mixed_x - x1_ours).abs() <= (mixed_x - x2.to(**to)).abs() + 1e-6).all())


def test_mixup_per_sample_lambda_tensor():
    g = make_generator(91)
    x1, x2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    p1, p2 = torch.eye(4)[:, :3].clone(), torch.full((4, 3), 1 / 3)
    p1[3] = torch.tensor([1.0, 0.0, 0.0])
    lam = torch.tensor([0.1, 0.9, 0.5, 0.3])
    mixed_x, mixed_p = mixup(x1, p1, x2, p2, lam)
    for i, value in enumerate(lam.tolist()):
        single_x, single_p = mixup(x1[i:i + 1], p1[i:i + 1], x2[i:i + 1], p2[i:i + 1], value)
        torch.testing.assert_close(mixed_x[i:i + 1], single_x)
        torch.testing.assert_close(mixed_p[i:i + 1], single_p)
    # A 0-d tensor behaves like the float.
    torch.testing.assert_close(mixup(x1, p1, x2, p2, torch.tensor(0.2))[0], mixup(x1, p1, x2, p2, 0.2)[0])


def test_mixup_bad_inputs():
    x, p = torch.randn(4, 5), torch.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        mixup(x, p, x, p, 1.5)
    with pytest.raises(ValueError, match=r"every lam must lie in \[0, 1\]"):
        mixup(x, p, x, p, torch.tensor([0.1, 0.2, -0.3, 0.4]))
    with pytest.raises(ValueError, match=r"\[N=4\] tensor"):
        mixup(x, p, x, p, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="same shape"):
        mixup(x, p, torch.randn(4, 6), p, 0.3)
    with pytest.raises(ValueError, match="floating-point"):
        mixup(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), p, torch.zeros(4, 3, 8, 8, dtype=torch.uint8), p, 0.3)
    with pytest.raises(ValueError, match="sum to 1"):
        mixup(x, p * 2, x, p, 0.3)


def loop_mixmatch(logits_x, targets_x, logits_u, targets_u, lambda_u):
    loss_x = loop_soft_cross_entropy(logits_x, targets_x)
    n_u, classes = logits_u.shape
    squared = 0
    for i in range(n_u):
        probs = loop_softmax([logits_u[i, k] for k in range(classes)])
        for k in range(classes):
            squared = squared + (probs[k] - targets_u[i, k]) ** 2
    loss_u = squared / (n_u * classes)  # mean over ALL entries, as google-research/mixmatch
    return loss_x + lambda_u * loss_u, loss_x, loss_u


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mixmatch_loss_matches_loop(device, dtype):
    g = make_generator(100)
    logits_x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    logits_u = torch.randn(5, 4, generator=g, dtype=torch.float64)
    targets_x = random_probabilities(3, 4, g)
    targets_u = random_probabilities(5, 4, g)
    to = dict(device=device, dtype=dtype)
    lx, lu = leaf(logits_x, device, dtype), leaf(logits_u, device, dtype)
    total, loss_x, loss_u = mixmatch_loss(lx, targets_x.to(**to), lu, targets_u.to(**to), lambda_u=75.0)
    lx_loop, lu_loop = leaf(logits_x), leaf(logits_u)
    total_loop, loss_x_loop, loss_u_loop = loop_mixmatch(lx_loop, targets_x, lu_loop, targets_u, 75.0)
    for ours, reference in ((total, total_loop), (loss_x, loss_x_loop), (loss_u, loss_u_loop)):
        assert_close(ours, reference, dtype)
    total.backward()
    total_loop.backward()
    assert_close(lx.grad, lx_loop.grad, dtype)
    assert_close(lu.grad, lu_loop.grad, dtype)


def test_mixmatch_loss_bad_inputs():
    logits, targets = torch.randn(3, 4), torch.full((3, 4), 0.25)
    with pytest.raises(ValueError, match="lambda_u must be >= 0"):
        mixmatch_loss(logits, targets, logits, targets, lambda_u=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        mixmatch_loss(logits, targets, logits, torch.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="classes"):
        mixmatch_loss(torch.randn(3, 5), torch.full((3, 5), 0.2), logits, targets)
    with pytest.raises(ValueError, match="did you pass logits"):
        mixmatch_loss(logits, targets, logits, torch.randn(3, 4))


# ----------------------------------------------------------------------------------------
# FixMatch
# ----------------------------------------------------------------------------------------
def loop_fixmatch(logits_weak, logits_strong, threshold):
    n, classes = logits_weak.shape
    total = 0
    mask = []
    for i in range(n):
        weak = loop_softmax([logits_weak[i, k].detach() for k in range(classes)])
        best = max(range(classes), key=lambda k: float(weak[k]))
        passes = float(weak[best]) >= threshold
        mask.append(1.0 if passes else 0.0)
        log_probs = loop_log_softmax_row([logits_strong[i, k] for k in range(classes)])
        if passes:
            total = total - log_probs[best]
    return total / n, torch.tensor(mask, dtype=torch.float64)  # mean over ALL samples


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threshold", [0.95, 0.6])
def test_fixmatch_matches_loop(device, dtype, threshold):
    g = make_generator(110)
    logits_weak = torch.randn(8, 5, generator=g, dtype=torch.float64)
    logits_weak[::2, 1] += 8.0  # even rows confident, odd rows not
    logits_strong = torch.randn(8, 5, generator=g, dtype=torch.float64)
    weak_ours = leaf(logits_weak, device, dtype)
    strong_ours = leaf(logits_strong, device, dtype)
    loss, mask, pseudo = fixmatch_loss(weak_ours, strong_ours, threshold)
    strong_loop = leaf(logits_strong)
    loss_loop, mask_loop = loop_fixmatch(logits_weak, strong_loop, threshold)
    assert 0 < mask_loop.sum() < 8
    assert mask.dtype == dtype and mask.shape == (8,) and pseudo.dtype == torch.int64
    assert_close(mask, mask_loop, dtype)
    assert torch.equal(pseudo.cpu(), logits_weak.argmax(dim=1))
    assert_close(loss, loss_loop, dtype)
    loss.backward()
    loss_loop.backward()
    assert_close(strong_ours.grad, strong_loop.grad, dtype)
    assert weak_ours.grad is None  # pseudo-labels carry no gradient


def test_fixmatch_mask_counts():
    confident = torch.tensor([10.0, 0.0, 0.0])  # max softmax prob ~ 0.99991
    unsure = torch.tensor([1.0, 0.0, 0.0])  # max softmax prob ~ 0.576
    logits_weak = torch.stack([confident, unsure, confident, unsure, unsure, confident, confident])
    logits_strong = torch.zeros_like(logits_weak)
    _, mask, _ = fixmatch_loss(logits_weak, logits_strong, 0.95)
    assert int(mask.sum()) == 4
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert int(fixmatch_loss(logits_weak, logits_strong, 0.0)[1].sum()) == 7
    assert int(fixmatch_loss(logits_weak, logits_strong, 1.0)[1].sum()) == 0
    assert int(fixmatch_loss(logits_weak, logits_strong, 0.5)[1].sum()) == 7
    # Uniform strong logits: CE = log 3 for each of the 4 confident rows, averaged over all 7.
    loss = fixmatch_loss(logits_weak, logits_strong, 0.95)[0]
    torch.testing.assert_close(loss, torch.tensor(4 * math.log(3) / 7))


def test_fixmatch_bad_inputs():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        fixmatch_loss(logits, logits, 1.5)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        fixmatch_loss(logits, logits, -0.1)
    with pytest.raises(ValueError, match="same shape"):
        fixmatch_loss(logits, torch.randn(5, 3))
    with pytest.raises(ValueError, match="floating-point"):
        fixmatch_loss(logits.long(), logits.long())


# ----------------------------------------------------------------------------------------
# S4L-Rotation
# ----------------------------------------------------------------------------------------
def rotate_with_rot90(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of every image, image-major: rows 4b..4b+3 are image b at 0/90/180/270."""
    rotated = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)], dim=1)
    labels = torch.arange(4).repeat(images.shape[0])
    return rotated.reshape(-1, *images.shape[1:]), labels


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_s4l_loss_matches_loop(device, dtype):
    g = make_generator(120)
    labelled = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    unlabelled = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1])
    rotated, rotation_labels = rotate_with_rot90(torch.cat([labelled, unlabelled]))
    assert torch.equal(rotated[5], torch.rot90(labelled[1], 1, dims=(1, 2)))
    class_weights = torch.randn(16, 3, generator=g, dtype=torch.float64)
    rotation_weights = torch.randn(16, 4, generator=g, dtype=torch.float64)
    to = dict(device=device, dtype=dtype)
    cw = leaf(class_weights, device, dtype)
    rw = leaf(rotation_weights, device, dtype)
    total, classification, rotation = s4l_loss(
        labelled.to(**to).flatten(1) @ cw, labels.to(device), rotated.to(**to).flatten(1) @ rw,
        rotation_labels.to(device), rotation_weight=0.5)
    cw_loop = leaf(class_weights)
    rw_loop = leaf(rotation_weights)
    logits_c = labelled.flatten(1) @ cw_loop
    logits_r = rotated.flatten(1) @ rw_loop
    cls_loop = sum(-loop_log_softmax_row([logits_c[i, k] for k in range(3)])[int(labels[i])] for i in range(3)) / 3
    rot_loop = sum(-loop_log_softmax_row([logits_r[i, k] for k in range(4)])[int(rotation_labels[i])]
                   for i in range(20)) / 20
    total_loop = cls_loop + 0.5 * rot_loop
    assert_close(classification, cls_loop, dtype)
    assert_close(rotation, rot_loop, dtype)
    assert_close(total, total_loop, dtype)
    total.backward()
    total_loop.backward()
    assert_close(cw.grad, cw_loop.grad, dtype)
    assert_close(rw.grad, rw_loop.grad, dtype)


def test_s4l_bad_inputs():
    logits, labels = torch.randn(3, 5), torch.tensor([0, 1, 4])
    rotation_logits, rotation_labels = torch.randn(8, 4), torch.arange(4).repeat(2)
    with pytest.raises(ValueError, match="4 columns"):
        s4l_loss(logits, labels, torch.randn(8, 3), rotation_labels)
    with pytest.raises(ValueError, match=r"rotation_labels must lie in \[0, 3\]"):
        s4l_loss(logits, labels, rotation_logits, rotation_labels + 1)
    with pytest.raises(ValueError, match="integer class indices"):
        s4l_loss(logits, labels.float(), rotation_logits, rotation_labels)
    with pytest.raises(ValueError, match=r"labels must have shape \[3\]"):
        s4l_loss(logits, labels[:2], rotation_logits, rotation_labels)
    with pytest.raises(ValueError, match="rotation_weight must be >= 0"):
        s4l_loss(logits, labels, rotation_logits, rotation_labels, rotation_weight=-1)


def test_pretext_rotate_batch_importable_when_present():
    """The rotations may come from ssl_course.losses.pretext (written separately); only import it."""
    pretext = Path(__file__).resolve().parents[1] / "ssl_course" / "losses" / "pretext.py"
    if not pretext.exists():
        pytest.skip("ssl_course/losses/pretext.py not written yet")
    from ssl_course.losses.pretext import rotate_batch

    assert callable(rotate_batch)
