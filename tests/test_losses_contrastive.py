"""Tests of ssl_course.losses.contrastive and ssl_course.losses.pretext.

Three kinds of reference are used:
* literal loop implementations of each formula (one anchor, one candidate at a time), compared
  in float64 on values and on autograd gradients;
* vectorised re-implementations following each official code base's convention (MoCo's
  cat-logits + CrossEntropy, SupContrast's mask arithmetic, SimCLR-TF's two directions,
  solo-learn's NNCLR), written here independently of the library;
* limiting cases whose value can be derived by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_course.losses import _checks
from ssl_course.losses.contrastive import (
    info_nce,
    nearest_neighbours,
    nnclr,
    nt_xent,
    selfcon,
    supcon,
    update_queue,
)
from ssl_course.losses.pretext import cpc_info_nce, cpc_patch_grid, rotate_batch, rotation_loss

F64 = torch.float64
ATOL = 1e-10


@pytest.fixture(autouse=True)
def _single_thread():
    """These tensors are tiny: extra intra-op threads only contend with other jobs for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randn(*shape, seed=0, dtype=F64, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, generator=gen, dtype=F64).to(dtype)
    return t.requires_grad_(requires_grad)


def unit(*shape, seed=0, dtype=F64, requires_grad=False):
    t = F.normalize(randn(*shape, seed=seed), dim=-1).to(dtype)
    return t.requires_grad_(requires_grad)


def value_and_grads(fn, inputs):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    value = fn(*inputs)
    grads = torch.autograd.grad(value, inputs, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]
    return value.detach(), grads


def assert_same_value_and_grads(fn_a, fn_b, inputs, atol=ATOL):
    value_a, grads_a = value_and_grads(fn_a, inputs)
    value_b, grads_b = value_and_grads(fn_b, inputs)
    torch.testing.assert_close(value_a, value_b, atol=atol, rtol=0)
    for g_a, g_b in zip(grads_a, grads_b):
        torch.testing.assert_close(g_a, g_b, atol=atol, rtol=0)


# ============================================================================================
# Literal loop implementations of the formulas
# ============================================================================================
def _unit_vec(v):
    return v / torch.sqrt((v * v).sum())


def _dot(a, b):
    return (a * b).sum()


def loop_info_nce(query, positive_key, negative_keys, tau):
    total = 0.0
    n = query.shape[0]
    negatives = [_unit_vec(negative_keys[j]) for j in range(negative_keys.shape[0])]
    for i in range(n):
        q = _unit_vec(query[i])
        positive_logit = _dot(q, _unit_vec(positive_key[i])) / tau
        denominator = torch.exp(positive_logit)
        for k in negatives:
            denominator = denominator + torch.exp(_dot(q, k) / tau)
        total = total - (positive_logit - torch.log(denominator))
    return total / n


def loop_nt_xent(z1, z2, tau):
    n = z1.shape[0]
    z = [_unit_vec(z1[i]) for i in range(n)] + [_unit_vec(z2[i]) for i in range(n)]
    total = 0.0
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        denominator = 0.0
        for b in range(2 * n):
            if b != a:
                denominator = denominator + torch.exp(_dot(z[a], z[b]) / tau)
        total = total - (_dot(z[a], z[p]) / tau - torch.log(denominator))
    return total / (2 * n)


def loop_supcon(features, labels, tau, base_tau):
    n, v, _ = features.shape
    anchors = []  # (embedding, class), view-major
    for view in range(v):
        for i in range(n):
            anchors.append((features[i, view], i if labels is None else int(labels[i])))
    total = 0.0
    for a, (za, ya) in enumerate(anchors):
        denominator = 0.0
        for c, (zc, _) in enumerate(anchors):
            if c != a:
                denominator = denominator + torch.exp(_dot(za, zc) / tau)
        positives = [p for p, (_, yp) in enumerate(anchors) if p != a and yp == ya]
        if not positives:
            continue  # contributes 0, still counted in the mean below
        inner = 0.0
        for p in positives:
            inner = inner + (_dot(za, anchors[p][0]) / tau - torch.log(denominator))
        total = total - (tau / base_tau) * inner / len(positives)
    return total / len(anchors)


def loop_selfcon(backbone, subnets, labels, tau, base_tau):
    """Every (image, exit) is an anchor; positives: every other (image', exit') with the same label."""
    exits = list(subnets) + [backbone]
    n = backbone.shape[0]
    items = [(exits[e][i], i if labels is None else int(labels[i])) for e in range(len(exits)) for i in range(n)]
    total = 0.0
    for a, (za, ya) in enumerate(items):
        candidates = [zc for c, (zc, _) in enumerate(items) if c != a]
        log_denominator = torch.log(sum(torch.exp(_dot(za, zc) / tau) for zc in candidates))
        positives = [zp for p, (zp, yp) in enumerate(items) if p != a and yp == ya]
        if positives:
            mean_log_prob = sum(_dot(za, zp) / tau - log_denominator for zp in positives) / len(positives)
            total = total - (tau / base_tau) * mean_log_prob
    return total / len(items)


def loop_nearest_index(z, queue):
    best = []
    for i in range(z.shape[0]):
        zi = _unit_vec(z[i])
        sims = [float(_dot(zi, _unit_vec(queue[j]))) for j in range(queue.shape[0])]
        best.append(max(range(len(sims)), key=lambda j: (sims[j], -j)))
    return best


def loop_nnclr(z1, z2, queue, tau, p1, p2):
    n = z1.shape[0]

    def direction(z_lookup, p_other):
        neighbours = [_unit_vec(queue[j]) for j in loop_nearest_index(z_lookup.detach(), queue.detach())]
        preds = [_unit_vec(p_other[k]) for k in range(n)]
        total = 0.0
        for i in range(n):
            logits = [_dot(neighbours[i], preds[k]) / tau for k in range(n)]
            total = total - (logits[i] - torch.log(sum(torch.exp(s) for s in logits)))
        return total / n

    return 0.5 * (direction(z1, p2) + direction(z2, p1))


def loop_cpc(predictions, targets, tau):
    b_size, s_size, _ = predictions.shape
    pairs = [(b, s) for b in range(b_size) for s in range(s_size)]
    total = 0.0
    for b, s in pairs:
        scores = [_dot(predictions[b, s], targets[b2, s2]) / tau for b2, s2 in pairs]
        positive = _dot(predictions[b, s], targets[b, s]) / tau
        total = total - (positive - torch.log(sum(torch.exp(x) for x in scores)))
    return total / len(pairs)


# ============================================================================================
# Official-convention oracles (vectorised, written here following each code base's convention)
# ============================================================================================
def moco_oracle(q, k, queue, T):
    """facebookresearch/moco: einsum logits, cat([l_pos, l_neg]) / T, CrossEntropyLoss, target 0."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    queue_ck = F.normalize(queue, dim=1).T  # MoCo stores the queue as [dim, K]
    l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)
    l_neg = torch.einsum("nc,ck->nk", q, queue_ck)
    logits = torch.cat([l_pos, l_neg], dim=1) / T
    labels = torch.zeros(logits.shape[0], dtype=torch.long)
    return torch.nn.CrossEntropyLoss()(logits, labels)


def supcontrast_oracle(features, labels, temperature, base_temperature):
    """HobbitLong/SupContrast SupConLoss, contrast_mode='all', with the zero-positive guard."""
    batch_size = features.shape[0]
    if labels is None:
        mask = torch.eye(batch_size, dtype=features.dtype)
    else:
        labels = labels.contiguous().view(-1, 1)
        mask = torch.eq(labels, labels.T).to(features.dtype)
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(
        torch.ones_like(mask), 1, torch.arange(batch_size * anchor_count).view(-1, 1), 0
    )
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, torch.ones_like(mask_pos_pairs), mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size).mean()


def simclr_tf_oracle(z1, z2, temperature, large_num=1e9):
    """google-research/simclr add_contrastive_loss: mean(loss_a + loss_b), self masked by -1e9."""
    h1, h2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    n = h1.shape[0]
    labels = torch.arange(n)  # one-hot over [ab | aa]: the positive sits in the first block
    masks = torch.eye(n, dtype=z1.dtype)
    logits_aa = h1 @ h1.T / temperature - masks * large_num
    logits_bb = h2 @ h2.T / temperature - masks * large_num
    logits_ab = h1 @ h2.T / temperature
    logits_ba = h2 @ h1.T / temperature
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], 1), labels, reduction="none")
    loss_b = F.cross_entropy(torch.cat([logits_ba, logits_bb], 1), labels, reduction="none")
    return (loss_a + loss_b).mean()


def solo_nnclr_oracle(z1, z2, queue, temperature, p1, p2):
    """vturrisi/solo-learn NNCLR: normalised z, queue of normalised z, find_nn, nnclr_loss_func x 1/2."""
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    queue = F.normalize(queue, dim=-1)

    def find_nn(z):
        idx = (z @ queue.T).max(dim=1)[1]
        return queue[idx]

    def loss_func(nn, p):
        nn, p = F.normalize(nn, dim=-1), F.normalize(p, dim=-1)
        logits = nn @ p.T / temperature
        return F.cross_entropy(logits, torch.arange(p.size(0)))

    return loss_func(find_nn(z1), p2) / 2 + loss_func(find_nn(z2), p1) / 2


# ============================================================================================
# InfoNCE
# ============================================================================================
@pytest.mark.parametrize("n,d,k,tau", [(1, 3, 1, 0.07), (4, 5, 7, 0.2), (6, 3, 2, 1.0)])
def test_info_nce_matches_loop_values_and_gradients(n, d, k, tau):
    inputs = [randn(n, d, seed=1), randn(n, d, seed=2), randn(k, d, seed=3)]
    assert_same_value_and_grads(
        lambda q, p, ng: info_nce(q, p, ng, tau), lambda q, p, ng: loop_info_nce(q, p, ng, tau), inputs
    )


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_info_nce_matches_moco_convention(tau):
    q, k, queue = randn(8, 16, seed=4), randn(8, 16, seed=5), randn(64, 16, seed=6)
    torch.testing.assert_close(info_nce(q, k, queue, tau), moco_oracle(q, k, queue, tau), atol=ATOL, rtol=0)


def test_info_nce_one_negative_is_a_logistic_loss():
    q, k, neg = randn(5, 4, seed=7), randn(5, 4, seed=8), randn(1, 4, seed=9)
    tau = 0.3
    cos_pos = F.cosine_similarity(q, k, dim=1)
    cos_neg = F.cosine_similarity(q, neg.expand_as(q), dim=1)
    expected = F.softplus((cos_neg - cos_pos) / tau).mean()
    torch.testing.assert_close(info_nce(q, k, neg, tau), expected, atol=ATOL, rtol=0)


def test_info_nce_perfect_positive_orthogonal_negatives():
    # q == k and every negative orthogonal to q: loss = log(1 + K exp(-1/tau)).
    eye = torch.eye(6, dtype=F64)
    q, negatives, tau = eye[:2], eye[2:], 0.1
    expected = math.log(1 + 4 * math.exp(-1 / tau))
    assert info_nce(q, q.clone(), negatives, tau).item() == pytest.approx(expected, abs=1e-12)


def test_info_nce_invariances():
    q, k, queue = randn(6, 5, seed=10), randn(6, 5, seed=11), randn(9, 5, seed=12)
    base = info_nce(q, k, queue, 0.2)
    perm, queue_perm = torch.randperm(6), torch.randperm(9)
    torch.testing.assert_close(info_nce(q[perm], k[perm], queue[queue_perm], 0.2), base, atol=ATOL, rtol=0)
    scale = torch.rand(6, 1, dtype=F64) * 5 + 0.1  # per-row positive scales: removed by normalisation
    torch.testing.assert_close(info_nce(q * scale, k, queue * 3.0, 0.2), base, atol=ATOL, rtol=0)
    rotation, _ = torch.linalg.qr(randn(5, 5, seed=13))  # a shared rotation keeps all cosines
    torch.testing.assert_close(info_nce(q @ rotation, k @ rotation, queue @ rotation, 0.2), base, atol=ATOL, rtol=0)


# ============================================================================================
# NT-Xent
# ============================================================================================
@pytest.mark.parametrize("n,d,tau", [(1, 2, 0.5), (3, 4, 0.1), (5, 3, 1.0)])
def test_nt_xent_matches_loop_values_and_gradients(n, d, tau):
    inputs = [randn(n, d, seed=20), randn(n, d, seed=21)]
    assert_same_value_and_grads(lambda a, b: nt_xent(a, b, tau), lambda a, b: loop_nt_xent(a, b, tau), inputs)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_is_half_the_official_tf_value(tau):
    z1, z2 = randn(7, 6, seed=22), randn(7, 6, seed=23)
    torch.testing.assert_close(2 * nt_xent(z1, z2, tau), simclr_tf_oracle(z1, z2, tau), atol=ATOL, rtol=0)


def test_nt_xent_identical_orthogonal_views():
    # z1 == z2 with orthonormal rows: positive cosine 1, the 2N-2 others 0.
    n, tau = 4, 0.2
    z = torch.eye(n, 6, dtype=F64)
    expected = -1 / tau + math.log(math.exp(1 / tau) + (2 * n - 2))
    assert nt_xent(z, z.clone(), tau).item() == pytest.approx(expected, abs=1e-12)


def test_nt_xent_single_pair_is_zero():
    # With N=1 the positive is the only candidate.
    z1, z2 = randn(1, 3, seed=24), randn(1, 3, seed=25)
    assert nt_xent(z1, z2, 0.1).item() == pytest.approx(0.0, abs=1e-12)


def test_nt_xent_invariances():
    z1, z2 = randn(6, 4, seed=26), randn(6, 4, seed=27)
    base = nt_xent(z1, z2, 0.3)
    perm = torch.randperm(6)
    torch.testing.assert_close(nt_xent(z1[perm], z2[perm], 0.3), base, atol=ATOL, rtol=0)
    torch.testing.assert_close(nt_xent(z2, z1, 0.3), base, atol=ATOL, rtol=0)  # symmetric in the views
    torch.testing.assert_close(nt_xent(4.0 * z1, 0.5 * z2, 0.3), base, atol=ATOL, rtol=0)


def test_nt_xent_pytorch_metric_learning_oracle():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    z1, z2 = randn(6, 5, seed=28), randn(6, 5, seed=29)
    labels = torch.cat([torch.arange(6), torch.arange(6)])
    expected = losses.NTXentLoss(temperature=0.2)(torch.cat([z1, z2]), labels)
    torch.testing.assert_close(nt_xent(z1, z2, 0.2), expected.to(F64), atol=1e-8, rtol=0)


def test_nt_xent_lightly_oracle():
    lightly_loss = pytest.importorskip("lightly.loss")
    z1, z2 = randn(6, 5, seed=30), randn(6, 5, seed=31)
    expected = lightly_loss.NTXentLoss(temperature=0.2)(z1, z2)
    torch.testing.assert_close(nt_xent(z1, z2, 0.2), expected.to(F64), atol=1e-8, rtol=0)


# ============================================================================================
# SupCon
# ============================================================================================
@pytest.mark.parametrize(
    "n,v,labels,tau,base",
    [
        (4, 2, [0, 1, 0, 2], 0.1, 0.07),
        (5, 1, [0, 0, 1, 2, 1], 0.5, 0.5),  # single view: anchor of class 2 has no positive
        (3, 3, None, 0.2, 0.07),
        (4, 2, [3, 3, 3, 3], 1.0, 0.5),
    ],
)
def test_supcon_matches_loop_values_and_gradients(n, v, labels, tau, base):
    features = F.normalize(randn(n, v, 4, seed=40), dim=2)
    labels = None if labels is None else torch.tensor(labels)
    assert_same_value_and_grads(
        lambda f: supcon(f, labels, tau, base), lambda f: loop_supcon(f, labels, tau, base), [features]
    )


@pytest.mark.parametrize(
    "labels,v",
    [(None, 2), (None, 3), ([0, 1, 1, 2, 0, 3], 1), ([0, 1, 1, 2, 0, 3], 2), ([0, 1, 1, 2, 0, 3], 3)],
)
def test_supcon_matches_supcontrast_convention(labels, v):
    features = F.normalize(randn(6, v, 8, seed=41), dim=2)
    labels = None if labels is None else torch.tensor(labels)
    for tau, base in [(0.07, 0.07), (0.2, 0.07)]:
        torch.testing.assert_close(
            supcon(features, labels, tau, base), supcontrast_oracle(features, labels, tau, base), atol=ATOL, rtol=0
        )


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_supcon_without_labels_is_nt_xent(tau):
    z1, z2 = unit(8, 6, seed=42), unit(8, 6, seed=43)
    torch.testing.assert_close(
        supcon(torch.stack([z1, z2], dim=1), None, tau, base_temperature=tau), nt_xent(z1, z2, tau), atol=ATOL, rtol=0
    )
    # distinct labels mean the same thing as no labels
    torch.testing.assert_close(
        supcon(torch.stack([z1, z2], 1), torch.arange(8) * 3, tau, tau), nt_xent(z1, z2, tau), atol=ATOL, rtol=0
    )


def test_supcon_anchor_without_positive_contributes_zero_but_counts():
    features = unit(3, 1, 4, seed=44)
    labels = torch.tensor([0, 0, 1])  # anchor 2 has no positive
    tau = 0.1
    z = features[:, 0]
    s = z @ z.T / tau
    # anchors 0 and 1: one positive (each other), candidates {the other, sample 2}
    loss_0 = -(s[0, 1] - torch.logsumexp(torch.stack([s[0, 1], s[0, 2]]), 0))
    loss_1 = -(s[1, 0] - torch.logsumexp(torch.stack([s[1, 0], s[1, 2]]), 0))
    expected = (loss_0 + loss_1 + 0.0) / 3  # anchor 2 adds 0 but is counted
    value = supcon(features, labels, tau, tau)
    assert torch.isfinite(value)
    torch.testing.assert_close(value, expected, atol=ATOL, rtol=0)
    # all-singleton batch: every anchor contributes 0, and the gradient is 0 rather than NaN
    leaf = features.clone().requires_grad_(True)
    zero = supcon(leaf, torch.tensor([0, 1, 2]), tau)
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(leaf.grad, torch.zeros_like(leaf))


def test_supcon_all_identical_same_class_gives_log_count():
    # All A embeddings equal and of one class: every candidate has probability 1/(A-1).
    n, v, tau, base = 3, 2, 0.1, 0.07
    features = F.normalize(torch.ones(n, v, 5, dtype=F64), dim=2)
    expected = (tau / base) * math.log(n * v - 1)
    assert supcon(features, torch.zeros(n, dtype=torch.long), tau, base).item() == pytest.approx(expected, abs=1e-12)


def test_supcon_temperature_scale_and_invariances():
    features, labels = unit(6, 2, 5, seed=45), torch.tensor([0, 1, 0, 1, 2, 2])
    base = supcon(features, labels, 0.2, 0.2)
    torch.testing.assert_close(supcon(features, labels, 0.2, 0.07), base * 0.2 / 0.07, atol=ATOL, rtol=0)
    perm = torch.randperm(6)
    torch.testing.assert_close(supcon(features[perm], labels[perm], 0.2, 0.2), base, atol=ATOL, rtol=0)
    torch.testing.assert_close(supcon(features.flip(1), labels, 0.2, 0.2), base, atol=ATOL, rtol=0)
    torch.testing.assert_close(supcon(features, labels + 10, 0.2, 0.2), base, atol=ATOL, rtol=0)


def test_supcon_small_temperature_is_finite():
    # Similarities of -1 at tau = 0.01 underflow exp() without the max shift.
    features = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.0]], [[1.0, 0.0]]], dtype=torch.float32)
    value = supcon(features, torch.tensor([0, 1, 0]), 0.01, 0.01)
    assert torch.isfinite(value)


# ============================================================================================
# SelfCon
# ============================================================================================
@pytest.mark.parametrize("labels", [None, [0, 1, 0, 2]])
@pytest.mark.parametrize("num_subnets", [1, 2])
def test_selfcon_matches_loop_values_and_gradients(labels, num_subnets):
    labels = None if labels is None else torch.tensor(labels)
    backbone = unit(4, 3, seed=50)
    subnets = [unit(4, 3, seed=51 + s) for s in range(num_subnets)]

    def lib(b, *s):
        return selfcon(b, list(s) if num_subnets > 1 else s[0], labels, 0.2, 0.07)

    def loop(b, *s):
        return loop_selfcon(b, s, labels, 0.2, 0.07)

    assert_same_value_and_grads(lib, loop, [backbone, *subnets])


def test_selfcon_matches_official_stacking_and_is_order_free():
    backbone, sub = unit(6, 4, seed=55), unit(6, 4, seed=56)
    labels = torch.tensor([0, 1, 0, 1, 2, 3])
    # raymin0223/self-contrastive-learning: features = cat([sub.unsqueeze(1), backbone.unsqueeze(1)], 1)
    official = supcontrast_oracle(torch.cat([sub.unsqueeze(1), backbone.unsqueeze(1)], dim=1), labels, 0.1, 0.07)
    torch.testing.assert_close(selfcon(backbone, sub, labels, 0.1), official, atol=ATOL, rtol=0)
    torch.testing.assert_close(selfcon(sub, [backbone], labels, 0.1), official, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        selfcon(backbone, [sub], labels, 0.1), supcon(torch.stack([backbone, sub], 1), labels, 0.1), atol=ATOL, rtol=0
    )


def test_selfcon_without_labels_uses_only_other_exits():
    backbone, sub = unit(5, 4, seed=57), unit(5, 4, seed=58)
    torch.testing.assert_close(selfcon(backbone, sub, None, 0.3, 0.3), nt_xent(backbone, sub, 0.3), atol=ATOL, rtol=0)


# ============================================================================================
# NNCLR
# ============================================================================================
def test_nearest_neighbours_picks_the_most_cosine_similar_row():
    z, queue = randn(5, 4, seed=60), randn(12, 4, seed=61) * torch.linspace(0.1, 5, 12, dtype=F64)[:, None]
    result = nearest_neighbours(z, queue)
    expected_idx = loop_nearest_index(z, queue)
    torch.testing.assert_close(result, F.normalize(queue, dim=1)[expected_idx], atol=ATOL, rtol=0)
    torch.testing.assert_close(result.norm(dim=1), torch.ones(5, dtype=F64), atol=ATOL, rtol=0)
    # a scaled copy of a queue row finds that row
    torch.testing.assert_close(nearest_neighbours(7.0 * queue[3:4], queue), F.normalize(queue[3:4], dim=1))


def test_nearest_neighbours_ties_and_no_gradient_to_z():
    queue = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], dtype=F64)  # rows 0 and 1 tie
    z = torch.tensor([[3.0, 0.0]], dtype=F64, requires_grad=True)
    result = nearest_neighbours(z, queue)
    torch.testing.assert_close(result, torch.tensor([[1.0, 0.0]], dtype=F64))
    assert not result.requires_grad


@pytest.mark.parametrize("with_predictor", [False, True])
def test_nnclr_matches_loop_values_and_gradients(with_predictor):
    z1, z2, queue = randn(4, 3, seed=62), randn(4, 3, seed=63), randn(9, 3, seed=64)
    p1, p2 = randn(4, 3, seed=65), randn(4, 3, seed=66)
    tau = 0.2
    if with_predictor:
        assert_same_value_and_grads(
            lambda a, b, c, d: nnclr(a, b, queue, tau, c, d),
            lambda a, b, c, d: loop_nnclr(a, b, queue, tau, c, d),
            [z1, z2, p1, p2],
        )
    else:
        assert_same_value_and_grads(
            lambda a, b: nnclr(a, b, queue, tau), lambda a, b: loop_nnclr(a, b, queue, tau, a, b), [z1, z2]
        )


def test_nnclr_matches_solo_learn_convention():
    z1, z2, queue = randn(8, 6, seed=67), randn(8, 6, seed=68), randn(32, 6, seed=69)
    p1, p2 = randn(8, 6, seed=70), randn(8, 6, seed=71)
    torch.testing.assert_close(
        nnclr(z1, z2, queue, 0.1, p1, p2), solo_nnclr_oracle(z1, z2, queue, 0.1, p1, p2), atol=ATOL, rtol=0
    )


def test_nnclr_with_the_batch_as_queue_is_a_cross_entropy_of_the_batch():
    z = randn(6, 4, seed=72)
    zn = F.normalize(z, dim=1)
    expected = F.cross_entropy(zn @ zn.T / 0.1, torch.arange(6))
    torch.testing.assert_close(nnclr(z, z.clone(), z.clone(), 0.1), expected, atol=ATOL, rtol=0)


def test_update_queue_fifo_wraparound_and_purity():
    queue = torch.zeros(5, 2, dtype=F64)
    z = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]], dtype=F64, requires_grad=True)
    new_queue, ptr = update_queue(queue, z, 3)
    assert ptr == 1 and isinstance(ptr, int)
    expected = torch.tensor([[1.0, 0.0], [0, 0], [0, 0], [0.6, 0.8], [0.0, 1.0]], dtype=F64)
    torch.testing.assert_close(new_queue, expected)
    assert queue.abs().sum() == 0, "the input queue must not be modified"
    assert not new_queue.requires_grad
    # more rows than slots: the last Q rows survive, in FIFO positions
    big = torch.arange(1.0, 8.0, dtype=F64)[:, None] * torch.tensor([[1.0, 0.0]], dtype=F64)
    big = big + torch.tensor([[0.0, 1.0]], dtype=F64)
    q2, ptr2 = update_queue(torch.zeros(3, 2, dtype=F64), big, torch.tensor(1))
    assert ptr2 == (1 + 7) % 3
    sequential, p = torch.zeros(3, 2, dtype=F64), 1
    for row in big:
        sequential, p = update_queue(sequential, row[None], p)
    torch.testing.assert_close(q2, sequential)
    assert p == ptr2


def test_update_queue_casts_to_queue_dtype():
    new_queue, _ = update_queue(torch.zeros(4, 3, dtype=F64), torch.ones(2, 3, dtype=torch.float32), 0)
    assert new_queue.dtype == F64


# ============================================================================================
# Pretext tasks
# ============================================================================================
def test_rotate_batch_order_direction_and_labels():
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.uint8).reshape(2, 1, 2, 2)
    x_rot, labels = rotate_batch(x)
    assert x_rot.shape == (8, 1, 2, 2) and x_rot.dtype == torch.uint8
    assert labels.dtype == torch.long and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # counter-clockwise: [[0, 1], [2, 3]] -> [[1, 3], [0, 2]]
    assert x_rot[2, 0].tolist() == [[1, 3], [0, 2]]
    for k in range(4):
        for i in range(2):
            assert torch.equal(x_rot[k * 2 + i], torch.rot90(x[i], k, dims=(1, 2)))
    # rotating a 90° image three more times gives back the original
    assert torch.equal(torch.rot90(x_rot[2:4], 3, dims=(2, 3)), x)


def test_rotation_loss_is_cross_entropy():
    logits, labels = randn(8, 4, seed=80), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    torch.testing.assert_close(rotation_loss(logits, labels), F.cross_entropy(logits, labels))
    inputs = [randn(8, 4, seed=81)]
    assert_same_value_and_grads(
        lambda lg: rotation_loss(lg, labels),
        lambda lg: sum(-(lg[m, labels[m]] - torch.logsumexp(lg[m], 0)) for m in range(8)) / 8,
        inputs,
    )


def test_cpc_patch_grid_layout():
    images = randn(2, 3, 32, 32, seed=82)
    grid = cpc_patch_grid(images)
    assert grid.shape == (2, 7, 7, 3, 8, 8)
    for r, c in [(0, 0), (3, 5), (6, 6)]:
        torch.testing.assert_close(grid[:, r, c], images[:, :, 4 * r:4 * r + 8, 4 * c:4 * c + 8], atol=0, rtol=0)
    assert cpc_patch_grid(images, 16, 8).shape == (2, 3, 3, 3, 16, 16)


@pytest.mark.parametrize("b,s,d,tau", [(1, 3, 2, 1.0), (2, 4, 3, 0.5)])
def test_cpc_info_nce_matches_loop_values_and_gradients(b, s, d, tau):
    inputs = [randn(b, s, d, seed=83), randn(b, s, d, seed=84)]
    assert_same_value_and_grads(
        lambda p, t: cpc_info_nce(p, t, tau), lambda p, t: loop_cpc(p, t, tau), inputs
    )


def test_cpc_info_nce_uses_negatives_from_other_positions_and_images():
    predictions, targets = randn(2, 3, 4, seed=85), randn(2, 3, 4, seed=86)
    flat_p, flat_t = predictions.reshape(6, 4), targets.reshape(6, 4)
    expected = F.cross_entropy(flat_p @ flat_t.T, torch.arange(6))  # dot products, not cosines
    torch.testing.assert_close(cpc_info_nce(predictions, targets), expected, atol=ATOL, rtol=0)
    # identical targets everywhere: the positive is indistinguishable, loss = log(B*S)
    same = torch.ones(2, 3, 4, dtype=F64)
    assert cpc_info_nce(predictions, same).item() == pytest.approx(math.log(6), abs=1e-12)


# ============================================================================================
# Training makes the loss fall and aligns positives
# ============================================================================================
def _train(params, loss_fn, steps=50, lr=0.5):
    optimiser = torch.optim.SGD(params, lr=lr)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    return history


def test_training_nt_xent_aligns_positives():
    torch.manual_seed(0)
    z1, z2 = torch.randn(16, 8, requires_grad=True), torch.randn(16, 8, requires_grad=True)
    before = F.cosine_similarity(z1, z2).mean().item()
    history = _train([z1, z2], lambda: nt_xent(z1, z2, 0.2))
    assert history[-1] < 0.5 * history[0]
    after = F.cosine_similarity(z1, z2).detach()
    assert after.mean() > max(before, 0.8)
    # each z1 row's most similar z2 row is its own positive
    sims = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T
    assert torch.equal(sims.argmax(1), torch.arange(16))


def test_training_info_nce_aligns_query_with_key():
    torch.manual_seed(1)
    q = torch.randn(8, 8, requires_grad=True)
    keys, queue = torch.randn(8, 8), torch.randn(32, 8)
    history = _train([q], lambda: info_nce(q, keys, queue, 0.2), lr=2.0)
    assert history[-1] < 0.5 * history[0]
    assert F.cosine_similarity(q, keys).min() > 0.8


def test_training_supcon_clusters_classes():
    torch.manual_seed(2)
    raw = torch.randn(12, 2, 8, requires_grad=True)
    labels = torch.arange(12) % 3
    history = _train([raw], lambda: supcon(F.normalize(raw, dim=2), labels, 0.2, 0.2), lr=5.0)
    assert history[-1] < 0.6 * history[0]
    z = F.normalize(raw.detach(), dim=2).transpose(0, 1).reshape(24, 8)
    cls = labels.repeat(2)
    sims = z @ z.T
    same = (cls[:, None] == cls[None, :]) & ~torch.eye(24, dtype=torch.bool)
    different = cls[:, None] != cls[None, :]
    assert sims[same].mean() > 0.7 and sims[different].mean() < 0.0
    assert sims[same].min() > sims[different].max()  # every class is separated from the others


def test_training_nnclr_predictions_move_towards_neighbours():
    torch.manual_seed(3)
    z1, z2, queue = torch.randn(8, 8), torch.randn(8, 8), torch.randn(64, 8)
    p1, p2 = torch.randn(8, 8, requires_grad=True), torch.randn(8, 8, requires_grad=True)
    nn1 = nearest_neighbours(z1, queue)
    before = F.cosine_similarity(nn1, p2.detach()).mean()
    history = _train([p1, p2], lambda: nnclr(z1, z2, queue, 0.1, p1, p2), lr=2.0)
    assert history[-1] < 0.2 * history[0]
    assert F.cosine_similarity(nn1, p2.detach()).mean() > before + 0.2


# ============================================================================================
# dtypes and devices
# ============================================================================================
def _all_losses(dtype, device="cpu"):
    def r(*shape, seed):
        return randn(*shape, seed=seed).to(device=device, dtype=dtype)

    labels = torch.tensor([0, 1, 0, 2], device=device)
    features = F.normalize(r(4, 2, 5, seed=90), dim=2)
    return {
        "info_nce": info_nce(r(4, 5, seed=91), r(4, 5, seed=92), r(7, 5, seed=93)),
        "nt_xent": nt_xent(r(4, 5, seed=94), r(4, 5, seed=95)),
        "supcon": supcon(features, labels),
        "selfcon": selfcon(features[:, 0], [features[:, 1]], labels),
        "nnclr": nnclr(r(4, 5, seed=96), r(4, 5, seed=97), r(10, 5, seed=98)),
        "cpc": cpc_info_nce(r(2, 3, 5, seed=99), r(2, 3, 5, seed=100)),
        "rotation": rotation_loss(r(8, 4, seed=101), torch.arange(4, device=device).repeat_interleave(2)),
    }


def test_float32_and_float64_agree_and_keep_their_dtype():
    single, double = _all_losses(torch.float32), _all_losses(F64)
    for name in single:
        assert single[name].dtype == torch.float32, name
        assert double[name].dtype == F64, name
        assert single[name].dim() == 0, name
        torch.testing.assert_close(single[name].double(), double[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    cpu, gpu = _all_losses(torch.float32), _all_losses(torch.float32, "cuda")
    for name in cpu:
        assert gpu[name].device.type == "cuda", name
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=1e-4, atol=1e-5, msg=name)
    x_rot, labels = rotate_batch(torch.zeros(2, 3, 4, 4, device="cuda"))
    assert x_rot.device.type == labels.device.type == "cuda"
    new_queue, _ = update_queue(torch.zeros(4, 5, device="cuda"), torch.ones(2, 5, device="cuda"), 3)
    assert new_queue.device.type == "cuda"


# ============================================================================================
# Input validation
# ============================================================================================
_Z = randn(4, 5, seed=110)
_Z3 = randn(4, 3, seed=111)
_F = F.normalize(randn(4, 2, 5, seed=112), dim=2)

BAD_CALLS = [
    ("info_nce 3-D query", lambda: info_nce(_F, _Z, _Z), r"query must have layout \[N, D\].*got a 3-D"),
    ("info_nce pair mismatch", lambda: info_nce(_Z, _Z[:3], _Z),
     r"query and positive_key must have the same shape.*\(4, 5\) and \(3, 5\)"),
    ("info_nce queue dim", lambda: info_nce(_Z, _Z, _Z3), r"same feature dimension D.*D=5.*D=3"),
    ("info_nce empty queue", lambda: info_nce(_Z, _Z, _Z[:0]), r"negative_keys is empty"),
    ("info_nce int", lambda: info_nce(_Z.long(), _Z, _Z), r"query must be a floating-point tensor.*int64.*\.float\(\)"),
    ("info_nce tau 0", lambda: info_nce(_Z, _Z, _Z, 0.0), r"temperature must be a finite number > 0.*got 0\.0"),
    ("info_nce tau negative", lambda: info_nce(_Z, _Z, _Z, -0.1), r"temperature must be a finite number > 0"),
    ("info_nce tau string", lambda: info_nce(_Z, _Z, _Z, "0.1"), r"temperature must be a positive real number"),
    ("info_nce dtype mix", lambda: info_nce(_Z, _Z.float(), _Z), r"same dtype.*float64 and torch.float32"),
    ("nt_xent shapes", lambda: nt_xent(_Z, _Z3), r"z1 and z2 must have the same shape"),
    ("nt_xent empty", lambda: nt_xent(_Z[:0], _Z[:0]), r"z1 is empty: it has 0 rows"),
    ("nt_xent 1-D", lambda: nt_xent(_Z[0], _Z[1]), r"z1 must have layout \[N, D\].*unsqueeze\(0\)"),
    ("supcon 2-D", lambda: supcon(_Z), r"features must have layout \[N, V, D\].*torch.stack\(\[z1, z2\], dim=1\)"),
    ("supcon labels length", lambda: supcon(_F, torch.tensor([0, 1, 2])),
     r"labels must have one entry per sample: length 4.*got length 3"),
    ("supcon float labels", lambda: supcon(_F, torch.zeros(4)), r"labels must hold integer class indices.*\.long\(\)"),
    ("supcon labels 2-D", lambda: supcon(_F, torch.zeros(4, 1, dtype=torch.long)), r"labels must be a 1-D tensor"),
    ("supcon one view no labels", lambda: supcon(_F[:, :1]), r"at least 2 views.*V=1"),
    ("supcon base tau", lambda: supcon(_F, None, 0.1, 0.0), r"base_temperature must be a finite number > 0"),
    ("supcon empty", lambda: supcon(_F[:0]), r"features is empty: it has 0 samples"),
    ("selfcon mismatch", lambda: selfcon(_Z, [_Z[:2]]),
     r"backbone_features and subnet_features\[0\] must have the same shape"),
    ("selfcon empty list", lambda: selfcon(_Z, []), r"subnet_features is an empty list"),
    ("nearest dim", lambda: nearest_neighbours(_Z, _Z3), r"z and queue must have the same feature dimension"),
    ("nnclr queue dim", lambda: nnclr(_Z, _Z, _Z3), r"z1 and queue must have the same feature dimension"),
    ("nnclr predictor shape", lambda: nnclr(_Z, _Z, _Z, 0.1, _Z3, _Z3), r"z1 and p1 must have the same shape"),
    ("update_queue ptr", lambda: update_queue(_Z, _Z, 4), r"ptr must satisfy 0 <= ptr < queue size \(4\); got 4"),
    ("update_queue dim", lambda: update_queue(_Z, _Z3, 0), r"same feature dimension"),
    ("rotate non-square", lambda: rotate_batch(torch.zeros(2, 3, 4, 5)), r"square images.*\(2, 3, 4, 5\)"),
    ("rotate 3-D", lambda: rotate_batch(torch.zeros(3, 4, 4)), r"x must have layout \[B, C, H, W\]"),
    ("rotation_loss columns", lambda: rotation_loss(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)),
     r"logits must have 4 columns"),
    ("rotation_loss range", lambda: rotation_loss(torch.zeros(2, 4), torch.tensor([0, 4])),
     r"rotation_labels must lie in 0..3"),
    ("cpc shape", lambda: cpc_info_nce(_F, _F[:, :1]), r"predictions and targets must have the same shape"),
    ("cpc 2-D", lambda: cpc_info_nce(_Z, _Z), r"predictions must have layout \[B, S, D\]"),
    ("patch grid tiling", lambda: cpc_patch_grid(torch.zeros(1, 3, 30, 30)),
     r"image height \(30\) must equal patch_size \+ a multiple of stride"),
]


@pytest.mark.parametrize("name,call,match", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_inputs_raise_informative_value_errors(name, call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_check_helpers_say_expected_given_and_fix():
    with pytest.raises(ValueError) as info:
        _checks.check_2d("logits", torch.zeros(2, 3, 1))
    message = str(info.value)
    assert "[N, D]" in message and "(2, 3, 1)" in message and "squeeze(-1)" in message
    with pytest.raises(ValueError, match="must be a torch.Tensor.*list.*torch.as_tensor"):
        _checks.check_floating("z", [1.0, 2.0])
    with pytest.raises(ValueError, match="finite number > 0"):
        _checks.check_temperature("tau", float("nan"))
    with pytest.raises(ValueError, match="positive real number"):
        _checks.check_temperature("tau", True)
    _checks.check_temperature("tau", torch.tensor(0.1))  # a 1-element tensor is accepted
    with pytest.raises(ValueError, match="same device|same dtype"):
        _checks.check_same_device_dtype("a", torch.zeros(1), "b", torch.zeros(1, dtype=F64))
