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
