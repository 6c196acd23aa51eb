"""kNN, linear probe and accuracy on data whose answer is known."""
from __future__ import annotations

import pytest
import torch

from ssl_course.evaluate import knn_accuracy, knn_predict, linear_probe, per_class_accuracy


def _clusters(n_per_class=50, num_classes=4, dim=16, spread=0.1, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=generator) * 3
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    features = centres[labels] + spread * torch.randn(len(labels), dim, generator=generator)
    return features, labels


def test_knn_is_perfect_on_separable_clusters():
    train_x, train_y = _clusters(seed=0)
    test_x, test_y = _clusters(seed=1, n_per_class=20)
    test_x = test_x  # same centres only if same seed for centres; rebuild with shared centres below
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 3
    test_x = centres[test_y] + 0.1 * torch.randn(len(test_y), 16)
    assert knn_accuracy(train_x, train_y, test_x, test_y, 4, k=20) == 1.0


def test_knn_matches_a_literal_vote():
    torch.manual_seed(0)
    bank, bank_labels, queries = torch.randn(30, 5), torch.randint(0, 3, (30,)), torch.randn(4, 5)
    scores = knn_predict(bank, bank_labels, queries, 3, k=7, temperature=0.5)
    for row, query in enumerate(queries):
        similarity = torch.nn.functional.cosine_similarity(query[None], bank)
        top = similarity.topk(7).indices
        expected = torch.zeros(3)
        for index in top:
            expected[bank_labels[index]] += torch.exp(similarity[index] / 0.5)
        assert torch.allclose(scores[row], expected, atol=1e-5)


def test_knn_caps_k_at_bank_size_and_validates():
    x, y = _clusters(n_per_class=2)
    assert knn_predict(x, y, x, 4, k=200).shape == (8, 4)
    with pytest.raises(ValueError, match="same D"):
        knn_predict(x, y, x[:, :3], 4)
    with pytest.raises(ValueError, match="temperature"):
        knn_predict(x, y, x, 4, temperature=0)


def test_linear_probe_separates_linearly_separable_data():
    train_x, train_y = _clusters(n_per_class=10)
    assert linear_probe(train_x, train_y, train_x, train_y, 4) == 1.0


def test_per_class_accuracy():
    accuracy = per_class_accuracy(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert accuracy.tolist() == [1.0, 1.0, 0.5]


# ------------------------------------------------------------------ evaluate_method -------------
def test_evaluate_method_reports_each_split_and_bank(tiny_bundle):
    from ssl_course.evaluate import evaluate_method, extract_features
    from ssl_course.methods import build_method

    torch.manual_seed(0)
    method = build_method("supervised", "tiny", tiny_bundle.num_classes).eval()
    results = evaluate_method(method, tiny_bundle, knn_bank=300)
    # the few-label kNN: the labelled images are the bank, here recomputed by hand on both splits
    labeled = extract_features(method.embed, tiny_bundle.train_images[tiny_bundle.labeled_idx])
    labeled_labels = tiny_bundle.train_labels[tiny_bundle.labeled_idx]
    for prefix, images, labels in (("", tiny_bundle.test_images, tiny_bundle.test_labels),
                                   ("val_", tiny_bundle.val_images, tiny_bundle.val_labels)):
        queries = extract_features(method.embed, images)
        assert results[prefix + "knn_accuracy"] == pytest.approx(
            knn_accuracy(labeled, labeled_labels, queries, labels, 10), abs=1e-6)
        bank = tiny_bundle.train_images[:: len(tiny_bundle.train_images) // 300][:300]
        bank_labels = tiny_bundle.train_labels[:: len(tiny_bundle.train_images) // 300][:300]
        assert results[prefix + "knn_all_labels_accuracy"] == pytest.approx(
            knn_accuracy(extract_features(method.embed, bank), bank_labels, queries, labels, 10), abs=1e-6)
        logits = extract_features(method.predict, images)       # the one-pass path gives the same logits
        assert results[prefix + "classifier_accuracy"] == pytest.approx(
            (logits.argmax(1) == labels).float().mean().item(), abs=1e-6)
    assert results["test_accuracy"] == results["classifier_accuracy"]
    assert results["val_accuracy"] == results["val_classifier_accuracy"]
    default = evaluate_method(method, tiny_bundle, probe=False, classifier=False, splits=("test",))
    assert set(default) == {"knn_accuracy"}                    # the labelled bank only, by default
    with pytest.raises(ValueError, match="'labeled'.*'all'"):
        evaluate_method(method, tiny_bundle, knn_bank="everything")
