"""Exemplar losses against literal loop implementations (float64, values and gradients), limiting
cases, pytorch-metric-learning as an oracle for the batch-hard triplet loss, and clear errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_course.losses import batch_hard_triplet_loss, exemplar_loss, s4l_exemplar_loss

DOUBLE = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ literal references ----
def exemplar_loss_loop(logits, ids):
    total = 0.0
    for m in range(logits.shape[0]):
        denominator = sum(torch.exp(logits[m, j]) for j in range(logits.shape[1]))
        total = total - torch.log(torch.exp(logits[m, ids[m]]) / denominator)
    return total / logits.shape[0]


def triplet_loop(embeddings, identities, margin=0.0, soft=True):
    total = 0.0
    for a in range(embeddings.shape[0]):
        positives, negatives = [], []
        for b in range(embeddings.shape[0]):
            distance = torch.sqrt(((embeddings[a] - embeddings[b]) ** 2).sum())
            if b != a and identities[b] == identities[a]:
                positives.append(distance)
            elif identities[b] != identities[a]:
                negatives.append(distance)
        if not positives or not negatives:
            continue                                   # contributes 0, still counted below
        violation = max(positives) - min(negatives) + margin
        total = total + (torch.log1p(torch.exp(violation)) if soft else torch.clamp(violation, min=0))
    return total / embeddings.shape[0]


def s4l_exemplar_loop(logits, labels, emb_l, emb_u, weight):
    classification, count = 0.0, 0
    for b in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            classification = classification - torch.log_softmax(logits[b, k], 0)[labels[b]]
            count += 1
    classification = classification / count

    def group(embeddings):
        rows, identities = [], []
        for b in range(embeddings.shape[0]):
            for k in range(embeddings.shape[1]):
                rows.append(embeddings[b, k] / torch.sqrt((embeddings[b, k] ** 2).sum()))
                identities.append(b)
        return triplet_loop(torch.stack(rows), torch.tensor(identities))

    triplet = (group(emb_u) + group(emb_l)) / 2
    return classification + weight * triplet, classification, triplet


# ------------------------------------------------------------------------------ exemplar_loss ----
@pytest.mark.parametrize("views,classes", [(1, 2), (6, 5), (9, 40)])
def test_exemplar_loss_matches_the_loop_in_values_and_gradients(views, classes):
    logits = torch.randn(views, classes, dtype=DOUBLE, generator=_gen(views), requires_grad=True)
    ids = torch.randint(0, classes, (views,), generator=_gen(classes))
    expected = exemplar_loss_loop(logits, ids)
    (grad_expected,) = torch.autograd.grad(expected, logits)
    got = exemplar_loss(logits, ids)
    (grad_got,) = torch.autograd.grad(got, logits)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)


def test_exemplar_loss_limiting_cases():
    # equal scores: log N, whatever the class; a confident right answer: about 0
    assert exemplar_loss(torch.zeros(4, 1000), torch.arange(4)).item() == pytest.approx(math.log(1000))
    logits = torch.full((3, 10), -50.0)
    logits[torch.arange(3), torch.tensor([7, 2, 9])] = 50.0
    assert exemplar_loss(logits, torch.tensor([7, 2, 9])).item() < 1e-6


def test_exemplar_loss_errors_name_the_fix():
    with pytest.raises(ValueError, match="num_exemplars"):
        exemplar_loss(torch.zeros(2, 5), torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="integer"):
        exemplar_loss(torch.zeros(2, 5), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[M, N\]"):
        exemplar_loss(torch.zeros(5), torch.tensor([1]))


# ------------------------------------------------------------------ batch_hard_triplet_loss ----
@pytest.mark.parametrize("soft,margin", [(True, 0.0), (True, 0.3), (False, 0.5), (False, 0.0)])
def test_triplet_matches_the_loop_in_values_and_gradients(soft, margin):
    embeddings = torch.randn(12, 5, dtype=DOUBLE, generator=_gen(1), requires_grad=True)
    identities = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 0])
    expected = triplet_loop(embeddings, identities, margin, soft)
    (grad_expected,) = torch.autograd.grad(expected, embeddings)
    got = batch_hard_triplet_loss(embeddings, identities, margin, soft_margin=soft)
    (grad_got,) = torch.autograd.grad(got, embeddings)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)


def test_triplet_anchor_without_positive_contributes_zero_but_counts():
    embeddings = torch.randn(5, 3, dtype=DOUBLE, generator=_gen(2))
    identities = torch.tensor([0, 0, 1, 1, 2])              # identity 2 has a single row
    torch.testing.assert_close(batch_hard_triplet_loss(embeddings, identities),
                               triplet_loop(embeddings, identities))
    assert torch.isfinite(batch_hard_triplet_loss(embeddings, identities))


def test_triplet_limiting_cases():
    # copies on top of each other, images far apart: hinge loss 0, soft margin ~ softplus(-distance)
    centres = torch.eye(3, dtype=DOUBLE) * 10
    embeddings = centres.repeat_interleave(4, dim=0)
    identities = torch.arange(3).repeat_interleave(4)
    assert batch_hard_triplet_loss(embeddings, identities, margin=1.0, soft_margin=False).item() == 0.0
    expected = F.softplus(torch.tensor(1e-6 - 10 * math.sqrt(2), dtype=DOUBLE))
    torch.testing.assert_close(batch_hard_triplet_loss(embeddings, identities), expected)
    # everything collapsed to one point: soft margin gives log 2, the chance level of the ranking
    collapsed = torch.ones(8, 4, dtype=DOUBLE)
    assert batch_hard_triplet_loss(collapsed, torch.arange(4).repeat(2)).item() == pytest.approx(math.log(2))


def test_triplet_agrees_with_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses, miners

    embeddings = F.normalize(torch.randn(32, 16, dtype=DOUBLE, generator=_gen(3)), dim=1)
    identities = torch.arange(8).repeat_interleave(4)
    for margin, soft in ((0.0, True), (0.2, False)):
        reference_loss = losses.TripletMarginLoss(margin=margin, smooth_loss=soft)
        triplets = miners.BatchHardMiner()(embeddings, identities)
        assert len(triplets[0]) == 32, pml.__version__      # one triplet per anchor
        expected = reference_loss(embeddings, identities, triplets)
        got = batch_hard_triplet_loss(embeddings, identities, margin, soft_margin=soft)
        if not soft:
            # pml averages the hinge over the anchors with a non-zero loss only
            violations = (got * 32).item()
            nonzero = _hinge_terms(embeddings, identities, margin).gt(0).sum().item()
            torch.testing.assert_close(torch.tensor(violations / nonzero, dtype=DOUBLE), expected.double(),
                                       rtol=1e-5, atol=1e-6)
        else:
            torch.testing.assert_close(got, expected.double(), rtol=1e-5, atol=1e-6)


def _hinge_terms(embeddings, identities, margin):
    distances = torch.cdist(embeddings, embeddings)
    same = identities[:, None] == identities[None, :]
    eye = torch.eye(len(identities), dtype=torch.bool)
    positive = distances.masked_fill(~(same & ~eye), -math.inf).amax(1)
    negative = distances.masked_fill(same, math.inf).amin(1)
    return (positive - negative + margin).clamp_min(0)


def test_triplet_errors_name_the_fix():
    with pytest.raises(ValueError, match="one class index per sample"):
        batch_hard_triplet_loss(torch.zeros(4, 2), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="margin"):
        batch_hard_triplet_loss(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), margin=-1.0)


# ------------------------------------------------------------------------- s4l_exemplar_loss ----
def test_s4l_exemplar_matches_the_loop_in_values_and_gradients():
    logits = torch.randn(3, 4, 5, dtype=DOUBLE, generator=_gen(4), requires_grad=True)
    labels = torch.tensor([4, 0, 2])
    emb_l = torch.randn(3, 4, 6, dtype=DOUBLE, generator=_gen(5), requires_grad=True)
    emb_u = torch.randn(5, 4, 6, dtype=DOUBLE, generator=_gen(6), requires_grad=True)
    expected = s4l_exemplar_loop(logits, labels, emb_l, emb_u, 0.7)
    got = s4l_exemplar_loss(logits, labels, emb_l, emb_u, 0.7)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    grads_expected = torch.autograd.grad(expected[0], (logits, emb_l, emb_u))
    grads_got = torch.autograd.grad(got[0], (logits, emb_l, emb_u))
    for g, e in zip(grads_got, grads_expected):
        torch.testing.assert_close(g, e)


def test_s4l_exemplar_weight_zero_is_the_supervised_loss_on_every_copy():
    logits = torch.randn(4, 8, 10, generator=_gen(7))
    labels = torch.tensor([1, 2, 3, 9])
    total, classification, _ = s4l_exemplar_loss(logits, labels, torch.randn(4, 8, 3), torch.randn(4, 8, 3), 0.0)
    torch.testing.assert_close(total, F.cross_entropy(logits.reshape(32, 10), labels.repeat_interleave(8)))
    torch.testing.assert_close(total, classification)


def test_s4l_exemplar_is_invariant_to_embedding_scale():
    """The embeddings are L2-normalised: scaling one image's copies changes nothing."""
    emb_l, emb_u = torch.randn(2, 3, 4, dtype=DOUBLE), torch.randn(3, 3, 4, dtype=DOUBLE)
    logits, labels = torch.randn(2, 3, 5, dtype=DOUBLE), torch.tensor([0, 1])
    scaled = emb_u * torch.tensor([2.0, 0.1, 7.0], dtype=DOUBLE)[:, None, None]
    torch.testing.assert_close(s4l_exemplar_loss(logits, labels, emb_l, emb_u)[2],
                               s4l_exemplar_loss(logits, labels, emb_l, scaled)[2])


def test_s4l_exemplar_errors_name_the_fix():
    with pytest.raises(ValueError, match="at least 2 copies"):
        s4l_exemplar_loss(torch.zeros(2, 1, 3), torch.tensor([0, 1]), torch.zeros(2, 1, 4), torch.zeros(2, 1, 4))
    with pytest.raises(ValueError, match="same"):
        s4l_exemplar_loss(torch.zeros(2, 3, 3), torch.tensor([0, 1]), torch.zeros(3, 3, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\[B_l, K, C\]"):
        s4l_exemplar_loss(torch.zeros(6, 3), torch.tensor([0, 1]), torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
