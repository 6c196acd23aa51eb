"""The relative-position, jigsaw and colorization losses against literal loop implementations
(float64, values and gradients), limiting cases, and their input checks."""
from __future__ import annotations

import math

import pytest
import torch

from ssl_course.data import ab_bin_centers
from ssl_course.losses import (
    annealed_mean,
    class_rebalancing_weights,
    colorization_l2_loss,
    colorization_loss,
    jigsaw_loss,
    non_grey_mask,
    relative_position_loss,
    soft_encode_ab,
)

GEN = torch.Generator().manual_seed(0)


def _randn(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float64)


def _cross_entropy_loop(logits, labels):
    total = 0.0
    for m in range(logits.shape[0]):
        scores = [math.exp(v) for v in logits[m].tolist()]
        total -= math.log(scores[int(labels[m])] / sum(scores))
    return total / logits.shape[0]


def _check_gradients(loss_fn, loop_fn, *inputs):
    """Values and gradients of ``loss_fn`` equal those of ``loop_fn`` (autograd through torch ops)."""
    a = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    b = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    value, expected = loss_fn(*a), loop_fn(*b)
    torch.testing.assert_close(value, expected)
    value.backward()
    expected.backward()
    for x, y in zip(a, b):
        if x.requires_grad:
            torch.testing.assert_close(x.grad, y.grad)


def _ce_loop_torch(logits, labels):
    total = logits.new_zeros(())
    for m in range(logits.shape[0]):
        total = total - (logits[m, labels[m]] - torch.log(torch.exp(logits[m]).sum()))
    return total / logits.shape[0]


@pytest.mark.parametrize("fn, classes", [(relative_position_loss, 8), (jigsaw_loss, 100), (jigsaw_loss, 3)])
def test_classification_losses_equal_the_loop(fn, classes):
    logits = _randn(7, classes)
    labels = torch.randint(classes, (7,), generator=GEN)
    assert fn(logits, labels).item() == pytest.approx(_cross_entropy_loop(logits, labels), abs=1e-12)
    _check_gradients(fn, _ce_loop_torch, logits, labels)


def test_classification_losses_reject_bad_input():
    with pytest.raises(ValueError, match="8 columns"):
        relative_position_loss(_randn(4, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="0..7"):
        relative_position_loss(_randn(4, 8), torch.full((4,), 8))
    with pytest.raises(ValueError, match="0..9"):
        jigsaw_loss(_randn(2, 10), torch.tensor([0, 12]))
    with pytest.raises(ValueError, match="integer"):
        jigsaw_loss(_randn(2, 10), torch.tensor([0.0, 1.0]))


# ------------------------------------------------------------------------ colorization ---------
CENTERS = torch.tensor([[-20.0, -20.0], [-20.0, 0.0], [0.0, 0.0], [0.0, 20.0], [20.0, 20.0], [30.0, -10.0]],
                       dtype=torch.float64)


def _soft_encode_loop(ab, centers, k, sigma):
    batch, _, height, width = ab.shape
    out = torch.zeros(batch, len(centers), height, width, dtype=ab.dtype)
    for b in range(batch):
        for h in range(height):
            for w in range(width):
                distances = [((ab[b, 0, h, w] - c[0]) ** 2 + (ab[b, 1, h, w] - c[1]) ** 2).item() for c in centers]
                nearest = sorted(range(len(centers)), key=lambda q: distances[q])[:k]
                weights = [math.exp(-distances[q] / (2 * sigma ** 2)) for q in nearest]
                for q, weight in zip(nearest, weights):
                    out[b, q, h, w] = weight / sum(weights)
    return out


def test_soft_encoding_equals_the_loop_and_sums_to_one():
    ab = _randn(2, 2, 3, 2) * 15
    for k, sigma in [(5, 5.0), (2, 10.0), (1, 5.0)]:
        encoded = soft_encode_ab(ab, CENTERS, neighbours=k, sigma=sigma)
        torch.testing.assert_close(encoded, _soft_encode_loop(ab, CENTERS, k, sigma))
        torch.testing.assert_close(encoded.sum(1), torch.ones(2, 3, 2, dtype=torch.float64))
    one_hot = soft_encode_ab(ab, CENTERS, neighbours=1)           # k = 1: the nearest bin, hard
    assert torch.all(one_hot.max(1).values == 1)


def _rebalancing_loop(prior, mix, centers=None, sigma=5.0):
    bins = len(prior)
    p = [v / sum(prior.tolist()) for v in prior.tolist()]
    if centers is not None:
        smoothed = []
        for q in range(bins):
            smoothed.append(sum(math.exp(-((centers[q] - centers[r]) ** 2).sum().item() / (2 * sigma ** 2)) * p[r]
                                for r in range(bins)))
        p = [v / sum(smoothed) for v in smoothed]
    raw = [1.0 / ((1 - mix) * p[q] + mix / bins) for q in range(bins)]
    scale = sum(p[q] * raw[q] for q in range(bins))
    return torch.tensor([w / scale for w in raw], dtype=torch.float64), torch.tensor(p, dtype=torch.float64)


def test_rebalancing_weights_equal_the_loop_and_their_limits():
    prior = torch.tensor([50.0, 10.0, 5.0, 1.0, 0.0, 34.0], dtype=torch.float64)
    for mix, centers in [(0.5, None), (0.2, None), (0.5, CENTERS)]:
        expected, p = _rebalancing_loop(prior, mix, centers)
        weights = class_rebalancing_weights(prior, mix, centers)
        torch.testing.assert_close(weights, expected)
        assert (p * weights).sum().item() == pytest.approx(1.0)            # E_p[w] = 1
    torch.testing.assert_close(class_rebalancing_weights(prior, 1.0), torch.ones(6, dtype=torch.float64))
    weights = class_rebalancing_weights(prior, 0.5)
    assert weights[3] > weights[0]                                          # rare colours weigh more


def _colorization_loss_loop(logits, targets, weights, image_mask=None):
    batch, bins, height, width = logits.shape
    total = logits.new_zeros(())
    for b in range(batch):
        if image_mask is not None and image_mask[b] == 0:
            continue                                   # a masked image adds nothing but counts below
        for h in range(height):
            for w in range(width):
                log_probabilities = logits[b, :, h, w] - torch.log(torch.exp(logits[b, :, h, w]).sum())
                best = max(range(bins), key=lambda q: targets[b, q, h, w].item())
                pixel = -sum(targets[b, q, h, w] * log_probabilities[q] for q in range(bins))
                total = total + (weights[best] if weights is not None else 1.0) * pixel
    return total / (batch * height * width)


def test_colorization_loss_equals_the_loop_with_and_without_weights():
    logits = _randn(2, 6, 3, 2)
    targets = soft_encode_ab(_randn(2, 2, 3, 2) * 15, CENTERS)
    weights = class_rebalancing_weights(torch.tensor([5.0, 1, 1, 2, 9, 1], dtype=torch.float64))
    for w in (None, weights):
        _check_gradients(lambda x, t, w=w: colorization_loss(x, t, w),
                         lambda x, t, w=w: _colorization_loss_loop(x, t, w), logits, targets)
    # the grey-image mask: image 1 left out, still counted in the mean
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64)
    _check_gradients(lambda x, t: colorization_loss(x, t, weights, mask),
                     lambda x, t: _colorization_loss_loop(x, t, weights, mask), logits, targets)
    # one-hot targets and no weights: the ordinary per-pixel cross-entropy
    hard = torch.nn.functional.one_hot(targets.argmax(1), 6).permute(0, 3, 1, 2).double()
    torch.testing.assert_close(colorization_loss(logits, hard),
                               torch.nn.functional.cross_entropy(logits, targets.argmax(1)))


def test_annealed_mean_equals_the_loop_and_its_limits():
    logits = _randn(2, 6, 2, 3)
    for temperature in (1.0, 0.38):
        expected = torch.zeros(2, 2, 2, 3, dtype=torch.float64)
        for b in range(2):
            for h in range(2):
                for w in range(3):
                    z = torch.softmax(logits[b, :, h, w], 0)
                    annealed = torch.exp(torch.log(z) / temperature)
                    annealed = annealed / annealed.sum()
                    expected[b, :, h, w] = sum(annealed[q] * CENTERS[q] for q in range(6))
        torch.testing.assert_close(annealed_mean(logits, CENTERS, temperature), expected)
    # T -> 0: the mode's centre; T = 1: the mean
    mode = CENTERS[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(annealed_mean(logits, CENTERS, 1e-4), mode)


def test_l2_loss_equals_the_loop():
    predicted, target = _randn(2, 2, 3, 3), _randn(2, 2, 3, 3)

    def loop(p, t):
        total = p.new_zeros(())
        for b in range(2):
            for h in range(3):
                for w in range(3):
                    total = total + 0.5 * ((p[b, :, h, w] - t[b, :, h, w]) ** 2).sum()
        return total / 18

    _check_gradients(colorization_l2_loss, loop, predicted, target)


def test_l2_prefers_the_grey_mean_where_classification_keeps_the_colours():
    # The paper's argument on a toy: a pixel is either strongly red-ish (a=+60) or strongly
    # green-ish (a=-60) with equal chance. The L2 optimum is the mean a=0 (grey); a distribution
    # over bins keeps both modes.
    centers = ab_bin_centers().double()
    values = torch.tensor([-60.0, 60.0], dtype=torch.float64)
    ab = torch.stack([values, torch.zeros(2, dtype=torch.float64)]).T.reshape(2, 2, 1, 1)
    constant = torch.zeros(1, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.SGD([constant], lr=0.5)
    for _ in range(100):
        optimiser.zero_grad()
        colorization_l2_loss(constant.expand(2, -1, -1, -1), ab).backward()
        optimiser.step()
    assert constant.detach().abs().max() < 1e-6                               # grey
    targets = soft_encode_ab(ab, centers).mean(0, keepdim=True)                # best distribution
    top_two = centers[targets[0, :, 0, 0].topk(2).indices][:, 0].sort().values
    assert top_two.tolist() == [-60.0, 60.0]                                   # both colours survive


def test_non_grey_mask_uses_the_official_threshold_on_any_pixel():
    ab = torch.zeros(4, 2, 3, 3, dtype=torch.float64)
    ab[1, 0, 2, 2] = 4.9                      # faint everywhere: grey
    ab[2, 1, 0, 1] = -5.1                     # one pixel with |b| > 5 is enough
    ab[3] = 40.0
    torch.testing.assert_close(non_grey_mask(ab), torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(non_grey_mask(ab, threshold=4.0), torch.tensor([0.0, 1.0, 1.0, 1.0],
                                                                              dtype=torch.float64))


def test_colorization_losses_reject_bad_input():
    with pytest.raises(ValueError, match="2 channels"):
        soft_encode_ab(_randn(1, 3, 2, 2), CENTERS)
    with pytest.raises(ValueError, match="same shape"):
        colorization_loss(_randn(1, 6, 2, 2), _randn(1, 5, 2, 2))
    with pytest.raises(ValueError, match="one entry per bin"):
        colorization_loss(_randn(1, 6, 2, 2), _randn(1, 6, 2, 2), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="one entry per image"):
        colorization_loss(_randn(2, 6, 2, 2), _randn(2, 6, 2, 2), None, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="2 channels"):
        non_grey_mask(_randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="bins"):
        annealed_mean(_randn(1, 5, 2, 2), CENTERS)
    with pytest.raises(ValueError, match="mix"):
        class_rebalancing_weights(torch.ones(6), 1.5)
