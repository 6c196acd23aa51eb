"""Tests of FeatMatch's pieces: AugF attention (models.attention), prototypes (cluster), losses (losses.featmatch)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ssl_course.cluster import extract_prototypes
from ssl_course.losses import semi_supervised
from ssl_course.losses.featmatch import (
    consistency_ramp,
    featmatch_consistency,
    featmatch_loss,
    featmatch_pseudo_labels,
    soft_cross_entropy,
)
from ssl_course.models import PrototypeAttention

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
DTYPES = [torch.float32, torch.float64]


def tolerance(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-11}


def assert_close(actual, expected, dtype) -> None:
    torch.testing.assert_close(actual.detach().cpu().double(), expected.detach().cpu().double(), **tolerance(dtype))


def leaf(tensor: torch.Tensor, device="cpu", dtype=torch.float64) -> torch.Tensor:
    return tensor.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)


# ----------------------------------------------------------------------------------------
# PrototypeAttention against a scalar loop implementation of the AugF formula
# ----------------------------------------------------------------------------------------
def loop_softmax(values):
    largest = max(float(v.detach()) for v in values)
    exps = [torch.exp(v - largest) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def loop_linear(layer_weight, layer_bias, vector):
    """y_j = sum_c W[j, c] x_c + b_j, one scalar at a time."""
    return [sum(layer_weight[j, c] * vector[c] for c in range(len(vector))) + layer_bias[j]
            for j in range(layer_weight.shape[0])]


def loop_attention(module: PrototypeAttention, features, prototypes):
    heads, head_dim = module.num_heads, module.head_dim
    refined_rows, weight_rows = [], []
    for i in range(features.shape[0]):
        x = [features[i, c] for c in range(features.shape[1])]
        concatenated_heads, weights_of_sample = [], []
        for h in range(heads):
            embed = module.embed_heads[h]
            e_x = loop_linear(embed.weight, embed.bias, x)
            e_p = [loop_linear(embed.weight, embed.bias, [prototypes[q, c] for c in range(prototypes.shape[1])])
                   for q in range(prototypes.shape[0])]
            scores = [sum(e_x[j] * e_p[q][j] for j in range(head_dim)) / math.sqrt(head_dim) for q in range(len(e_p))]
            weights = loop_softmax(scores)
            attended = [sum(weights[q] * e_p[q][j] for q in range(len(e_p))) for j in range(head_dim)]
            combine = module.combine_heads[h]
            fused = loop_linear(combine.weight, combine.bias, attended + e_x)
            concatenated_heads.extend(torch.relu(v) for v in fused)
            weights_of_sample.append(torch.stack(weights))
        residual = loop_linear(module.residual_projection.weight, module.residual_projection.bias, concatenated_heads)
        refined_rows.append(torch.stack([torch.relu(x[c] + residual[c]) for c in range(len(x))]))
        weight_rows.append(torch.stack(weights_of_sample))
    return torch.stack(refined_rows), torch.stack(weight_rows)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_matches_loop_values_and_gradients(device, dtype):
    torch.manual_seed(0)
    reference_module = PrototypeAttention(feature_dim=4, num_heads=2).double()
    module = copy.deepcopy(reference_module).to(device=device, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    features = torch.randn(3, 4, generator=g, dtype=torch.float64) + 0.5
    prototypes = torch.randn(5, 4, generator=g, dtype=torch.float64)
    f_ours, p_ours = leaf(features, device, dtype), leaf(prototypes, device, dtype)
    f_loop, p_loop = leaf(features), leaf(prototypes)
    refined, weights = module(f_ours, p_ours)
    refined_loop, weights_loop = loop_attention(reference_module, f_loop, p_loop)
    assert refined.shape == (3, 4) and weights.shape == (3, 2, 5)
    assert refined.dtype == dtype and refined.device.type == device
    assert_close(refined, refined_loop, dtype)
    assert_close(weights, weights_loop, dtype)
    projection = torch.randn(3, 4, generator=g, dtype=torch.float64)
    (refined * projection.to(device=device, dtype=dtype)).sum().backward()
    (refined_loop * projection).sum().backward()
    assert_close(f_ours.grad, f_loop.grad, dtype)
    assert_close(p_ours.grad, p_loop.grad, dtype)
    for ours, reference in zip(module.parameters(), reference_module.parameters()):
        assert_close(ours.grad, reference.grad, dtype)


def test_attention_layer_structure_matches_official_atten_head():
    module = PrototypeAttention(feature_dim=16, num_heads=4)
    assert module.head_dim == 4
    assert len(module.embed_heads) == 4 and len(module.combine_heads) == 4
    for embed, combine in zip(module.embed_heads, module.combine_heads):
        assert tuple(embed.weight.shape) == (4, 16)  # phi_e^h: D -> D/H
        assert tuple(combine.weight.shape) == (4, 8)  # phi_a^h: 2D/H -> D/H
    assert tuple(module.residual_projection.weight.shape) == (16, 16)  # phi_r: D -> D


@pytest.mark.parametrize("device", DEVICES)
def test_attention_shapes_rows_sum_to_one_and_gradients_flow(device):
    torch.manual_seed(2)
    module = PrototypeAttention(feature_dim=16, num_heads=4).to(device)
    features = torch.randn(7, 16, device=device, requires_grad=True)
    prototypes = torch.randn(10, 16, device=device, requires_grad=True)
    refined, weights = module(features, prototypes)
    assert refined.shape == (7, 16) and weights.shape == (7, 4, 10)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(7, 4, device=device))
    assert bool((weights >= 0).all()) and bool((refined >= 0).all())  # softmax, final ReLU
    refined.pow(2).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert prototypes.grad is not None and prototypes.grad.abs().sum() > 0
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_attention_dropout_keeps_returned_weights_normalised():
    torch.manual_seed(3)
    module = PrototypeAttention(feature_dim=8, num_heads=2, attention_dropout=0.5)
    features, prototypes = torch.randn(5, 8), torch.randn(6, 8)
    module.train()
    _, weights = module(features, prototypes)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(5, 2))
    module.eval()
    first, _ = module(features, prototypes)
    second, _ = module(features, prototypes)
    torch.testing.assert_close(first, second)


def test_attention_bad_inputs():
    with pytest.raises(ValueError, match="num_heads=3 must divide feature_dim=16"):
        PrototypeAttention(16, num_heads=3)
    with pytest.raises(ValueError, match="feature_dim must be a positive int"):
        PrototypeAttention(0)
    with pytest.raises(ValueError, match=r"attention_dropout must lie in \[0, 1\)"):
        PrototypeAttention(16, attention_dropout=1.0)
    module = PrototypeAttention(16, num_heads=4)
    with pytest.raises(ValueError, match="prototypes must have feature dimension 16"):
        module(torch.randn(3, 16), torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"features must be 2-D"):
        module(torch.randn(16), torch.randn(4, 16))
    with pytest.raises(ValueError, match=r"module.to\(features.dtype"):
        module(torch.randn(3, 16, dtype=torch.float64), torch.randn(4, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype"):
        module(torch.randn(3, 16), torch.randn(4, 16, dtype=torch.float64))


# ----------------------------------------------------------------------------------------
# extract_prototypes (per-class k-means)
# ----------------------------------------------------------------------------------------
def clustered_data(seed: int, num_classes: int, clusters_per_class: int, points_per_cluster, dim: int = 5,
                   spread: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes * clusters_per_class, dim, generator=g, dtype=torch.float64) * 10
    features, labels = [], []
    for index, center in enumerate(centers):
        count = points_per_cluster if isinstance(points_per_cluster, int) else points_per_cluster[index]
        features.append(center + spread * torch.randn(count, dim, generator=g, dtype=torch.float64))
        labels.append(torch.full((count,), index // clusters_per_class, dtype=torch.long))
    # Shuffle so the classes are interleaved, as in a real memory bank.
    order = torch.randperm(sum(len(x) for x in labels), generator=g)
    return torch.cat(features)[order], torch.cat(labels)[order], centers


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_prototypes_recover_well_separated_clusters_with_labels(device, dtype):
    features, labels, centers = clustered_data(0, num_classes=3, clusters_per_class=2,
                                               points_per_cluster=[15, 25, 10, 30, 20, 12])
    generator = torch.Generator(device=device).manual_seed(0)
    prototypes, prototype_labels = extract_prototypes(features.to(device=device, dtype=dtype), labels.to(device),
                                                      num_classes=3, prototypes_per_class=2, generator=generator)
    assert prototypes.shape == (6, 5) and prototypes.dtype == dtype and prototypes.device.type == device
    assert prototype_labels.tolist() == [0, 0, 1, 1, 2, 2] and prototype_labels.dtype == torch.int64
    prototypes = prototypes.cpu().double()
    for class_index in range(3):
        true_centers = centers[2 * class_index: 2 * class_index + 2]
        found = prototypes[prototype_labels.cpu() == class_index]
        distances = torch.cdist(true_centers, found)  # [2 true, 2 found]
        # Every true sub-cluster centre has a prototype of the right class next to it.
        assert distances.min(dim=1).values.max() < 0.1, distances
        assert distances.min(dim=0).values.max() < 0.1, distances


def loop_nearest_means(points, prototypes):
    """Assign each point to its nearest prototype (python loops) and return the cluster means."""
    sums = [torch.zeros(points.shape[1], dtype=torch.float64) for _ in range(prototypes.shape[0])]
    counts = [0] * prototypes.shape[0]
    for point in points:
        distances = [float(sum((point[d] - proto[d]) ** 2 for d in range(points.shape[1]))) for proto in prototypes]
        nearest = min(range(len(distances)), key=distances.__getitem__)
        sums[nearest] += point
        counts[nearest] += 1
    return [s / c if c else None for s, c in zip(sums, counts)]


def test_prototypes_are_a_fixed_point_of_lloyd_iterations():
    g = torch.Generator().manual_seed(5)
    features = torch.randn(60, 3, generator=g, dtype=torch.float64)
    labels = torch.arange(60) % 2
    prototypes, prototype_labels = extract_prototypes(features, labels, 2, 3, iters=100,
                                                      generator=torch.Generator().manual_seed(1))
    for class_index in range(2):
        class_prototypes = prototypes[prototype_labels == class_index]
        means = loop_nearest_means(features[labels == class_index], class_prototypes)
        for prototype, mean in zip(class_prototypes, means):
            assert mean is not None
            torch.testing.assert_close(prototype, mean)


def test_prototypes_small_classes_repeat_their_points():
    g = torch.Generator().manual_seed(6)
    features = torch.randn(9, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0, 0, 2, 2, 0, 2])  # class 1 has 1 sample, class 2 has 3
    generator = torch.Generator().manual_seed(0)
    prototypes, prototype_labels = extract_prototypes(features, labels, 3, 3, generator=generator)
    assert prototypes.shape == (9, 4)
    # Class 1 (one sample): that sample three times.
    for row in prototypes[prototype_labels == 1]:
        torch.testing.assert_close(row, features[1])
    # Class 2 (exactly p samples): its samples themselves.
    class_two = prototypes[prototype_labels == 2]
    torch.testing.assert_close(class_two, features[labels == 2])
    # Class 0 (5 samples, 3 prototypes): each prototype is a mean of some of its points.
    assert torch.isfinite(prototypes).all()


def test_prototypes_deterministic_given_generator_and_no_grad():
    features, labels, _ = clustered_data(7, num_classes=2, clusters_per_class=3, points_per_cluster=10, spread=3.0)
    features = features.float().requires_grad_(True)
    first = extract_prototypes(features, labels, 2, 4, generator=torch.Generator().manual_seed(42))
    second = extract_prototypes(features, labels, 2, 4, generator=torch.Generator().manual_seed(42))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not first[0].requires_grad


def test_prototypes_cosine_metric_clusters_directions():
    # Two directions per class, with very different norms along each direction.
    g = torch.Generator().manual_seed(8)
    directions = F.normalize(torch.randn(4, 6, generator=g, dtype=torch.float64), dim=1)
    features, labels = [], []
    for index, direction in enumerate(directions):
        norms = torch.rand(20, 1, generator=g, dtype=torch.float64) * 9 + 1
        features.append(norms * (direction + 0.01 * torch.randn(20, 6, generator=g, dtype=torch.float64)))
        labels.append(torch.full((20,), index // 2))
    features, labels = torch.cat(features), torch.cat(labels)
    prototypes, prototype_labels = extract_prototypes(features, labels, 2, 2, metric="cosine",
                                                      generator=torch.Generator().manual_seed(0))
    cosine = F.normalize(prototypes, dim=1) @ directions.T  # [4 prototypes, 4 directions]
    for class_index in range(2):
        rows = cosine[prototype_labels == class_index][:, 2 * class_index: 2 * class_index + 2]
        assert rows.max(dim=0).values.min() > 0.99


def test_prototypes_bad_inputs():
    features, labels = torch.randn(10, 3), torch.arange(10) % 3
    with pytest.raises(ValueError, match=r"classes \[3\] have no samples"):
        extract_prototypes(features, labels, 4, 2)
    with pytest.raises(ValueError, match="integer class indices"):
        extract_prototypes(features, labels.float(), 3, 2)
    with pytest.raises(ValueError, match=r"pseudo_labels must have shape \[N=10\]"):
        extract_prototypes(features, labels[:5], 3, 2)
    with pytest.raises(ValueError, match=r"pseudo_labels must lie in \[0, 1\]"):
        extract_prototypes(features, labels, 2, 2)
    with pytest.raises(ValueError, match="prototypes_per_class must be a positive int"):
        extract_prototypes(features, labels, 3, 0)
    with pytest.raises(ValueError, match="metric must be"):
        extract_prototypes(features, labels, 3, 2, metric="manhattan")
    with pytest.raises(ValueError, match="floating-point"):
        extract_prototypes(features.long(), labels, 3, 2)


# ----------------------------------------------------------------------------------------
# Pseudo-labels, soft cross-entropy, ramp, total loss
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_featmatch_pseudo_labels_match_loop(dtype):
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64) * 2
    expected = []
    for row in logits:
        probs = loop_softmax([row[k] for k in range(3)])
        powered = [p ** (1 / 0.75) for p in probs]
        expected.append(torch.stack([v / sum(powered) for v in powered]))
    expected = torch.stack(expected)
    ours_logits = leaf(logits, "cpu", dtype)
    ours = featmatch_pseudo_labels(ours_logits)
    assert not ours.requires_grad
    assert_close(ours, expected, dtype)
    with pytest.raises(ValueError, match="T must be > 0"):
        featmatch_pseudo_labels(logits, T=0)


def test_soft_cross_entropy_is_reexported():
    assert soft_cross_entropy is semi_supervised.soft_cross_entropy


def _cross_entropy_loop(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-Σ_c t_c log softmax(z)_c for one row, written out."""
    total = sum(torch.exp(z) for z in logits)
    return -sum(t * torch.log(torch.exp(z) / total) for t, z in zip(target, logits))


@pytest.mark.parametrize("dtype", DTYPES)
def test_featmatch_consistency_is_the_mean_over_a_loop_of_views(dtype):
    """K strong views + the weak view (V = K + 1): the average over views of the per-image
    cross-entropy, each view weighing 1 / V (official train2: log_loss over all V·N rows)."""
    g = torch.Generator().manual_seed(4)
    strong_views, images, classes = 3, 5, 4
    views = strong_views + 1                                   # the last view is the weak one
    logits = torch.randn(views, images, classes, generator=g, dtype=torch.float64) * 2
    targets = torch.softmax(torch.randn(views, images, classes, generator=g, dtype=torch.float64), dim=2)
    reference_logits = logits.clone().requires_grad_(True)
    per_view = []
    for v in range(views):
        per_view.append(sum(_cross_entropy_loop(reference_logits[v, i], targets[v, i]) for i in range(images)) / images)
    strong_part = sum(per_view[:strong_views]) / strong_views
    weak_part = per_view[strong_views]
    # the weak view enters with weight 1 / (K + 1), the strong views share K / (K + 1)
    expected = (strong_views * strong_part + weak_part) / views
    ours_logits = leaf(logits, "cpu", dtype)
    ours = featmatch_consistency(ours_logits, targets.to(dtype))
    assert_close(ours, expected, dtype)
    expected.backward()
    ours.backward()
    assert_close(ours_logits.grad, reference_logits.grad, dtype)
    # the weak view's own contribution, by itself, is the loop over its images
    weak_alone = featmatch_consistency(logits[strong_views:].to(dtype), targets[strong_views:].to(dtype))
    assert_close(weak_alone, weak_part, dtype)
    # one view reduces to the plain soft cross-entropy of that view
    assert_close(featmatch_consistency(logits[:1], targets[:1]), soft_cross_entropy(logits[0], targets[0]),
                 torch.float64)


def test_featmatch_consistency_bad_inputs():
    logits, targets = torch.randn(2, 3, 4), torch.softmax(torch.randn(2, 3, 4), dim=2)
    with pytest.raises(ValueError, match=r"logits must have layout \[V, N, C\].*stack the views"):
        featmatch_consistency(logits.flatten(0, 1), targets)
    with pytest.raises(ValueError, match="same shape"):
        featmatch_consistency(logits, targets[:1])


def test_consistency_ramp_values():
    assert consistency_ramp(0, 100, 2.0) == pytest.approx(2.0 * math.exp(-5))
    assert consistency_ramp(50, 100, 2.0) == pytest.approx(2.0 * math.exp(-5 * 0.25))
    assert consistency_ramp(100, 100, 2.0) == pytest.approx(2.0)
    assert consistency_ramp(1000, 100, 2.0) == pytest.approx(2.0)
    assert consistency_ramp(25, 100, 2.0, schedule="linear") == pytest.approx(0.5)
    assert consistency_ramp(0, 100, 2.0, schedule="linear") == 0.0
    assert consistency_ramp(7, 0, 3.0) == 3.0
    values = [consistency_ramp(step, 100, 1.0) for step in range(0, 101, 10)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="schedule must be"):
        consistency_ramp(1, 10, 1.0, schedule="cosine")
    with pytest.raises(ValueError, match="step must be >= 0"):
        consistency_ramp(-1, 10, 1.0)


def test_featmatch_loss_is_the_documented_weighted_sum():
    clf = torch.tensor(1.5, requires_grad=True)
    con_g = torch.tensor(0.4, requires_grad=True)
    con_f = torch.tensor(0.2, requires_grad=True)
    total = featmatch_loss(clf, con_g, con_f, lambda_g=0.5, lambda_f=2.0)
    torch.testing.assert_close(total, torch.tensor(1.5 + 0.5 * 0.4 + 2.0 * 0.2))
    total.backward()
    assert (float(clf.grad), float(con_g.grad), float(con_f.grad)) == pytest.approx((1.0, 0.5, 2.0))
    with pytest.raises(ValueError, match="lambda_f must be >= 0"):
        featmatch_loss(clf, con_g, con_f, 0.5, -1.0)
    with pytest.raises(ValueError, match="con_g_loss must be a scalar"):
        featmatch_loss(clf, torch.ones(3), con_f, 0.5, 2.0)


def test_featmatch_step_end_to_end_gradients_reach_attention():
    """One FeatMatch step on random 'images': L_clf + λ_g L_con-g + λ_f L_con-f."""
    torch.manual_seed(10)
    num_classes, dim = 3, 8
    backbone = torch.nn.Linear(12, dim)
    attention = PrototypeAttention(dim, num_heads=2)
    classifier = torch.nn.Linear(dim, num_classes)
    labelled, labels = torch.randn(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
    weak, strong = torch.randn(10, 12), torch.randn(10, 12)
    with torch.no_grad():
        bank = backbone(torch.cat([labelled, weak]))
        bank_labels = torch.cat([labels, classifier(bank[6:]).argmax(dim=1)])
        bank_labels[:3] = torch.arange(3)  # make sure every class occurs
    prototypes, _ = extract_prototypes(bank, bank_labels, num_classes, 2, generator=torch.Generator().manual_seed(0))

    refined_labelled, _ = attention(backbone(labelled), prototypes)
    clf_loss = F.cross_entropy(classifier(refined_labelled), labels)
    refined_weak, _ = attention(backbone(weak), prototypes)
    pseudo = featmatch_pseudo_labels(classifier(refined_weak))
    raw_strong = backbone(strong)
    refined_strong, _ = attention(raw_strong, prototypes)
    con_g = soft_cross_entropy(classifier(refined_strong), pseudo)  # refined features g = AugF(f)
    con_f = soft_cross_entropy(classifier(raw_strong), pseudo)  # raw features f
    total = featmatch_loss(clf_loss, con_g, con_f,
                           lambda_g=consistency_ramp(10, 100, 0.5, "linear"),
                           lambda_f=consistency_ramp(10, 100, 2.0, "linear"))
    total.backward()
    assert torch.isfinite(total)
    for module in (backbone, attention, classifier):
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
