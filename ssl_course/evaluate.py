"""Evaluation: features, weighted kNN, a linear probe on the few labels, classifier accuracy.

Protocols (and why):

* **Weighted kNN** (Wu et al. 2018, "Unsupervised feature learning via non-parametric instance
  discrimination"; the monitor used by InstDisc, MoCo's CIFAR demo and solo-learn): cosine
  similarity, the ``k = 200`` nearest training features vote for their class with weight
  ``exp(s / 0.1)``. Its memory bank holds the features *and labels of every training image*: it
  measures how well classes are separated in the representation, not what a few-label learner
  could do. The few-label numbers are the linear probe and the classifier accuracy.
* **Linear probe**: a logistic-regression head trained on frozen features of the *labelled
  subset only* (no augmentation), then applied to the test set.
* **Classifier accuracy**: for methods that train a classifier (supervised, FixMatch, …), the
  fraction of test images whose arg-max logit is the true class.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ssl_course.data.augment import normalize
from ssl_course.data.splits import evenly_spaced


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def extract_features(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                     batch_size: int = 512, progress: bool = False, desc: str = "features") -> torch.Tensor:
    """Apply ``fn`` (normalised float images → ``[B,D]``) to ``uint8 [N,3,H,W]`` images in batches.

    Returns float32 ``[N, D]`` on the images' device. Put modules in ``eval()`` mode first
    (:func:`evaluate_method` does), otherwise batch-norm statistics change while you measure.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N,3,H,W], got {images.dtype} {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    outputs = []
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc=desc, leave=False, disable=not progress):
        with _autocast(images.device):
            out = fn(normalize(images[start:start + batch_size]))
        outputs.append(out.float())
    return torch.cat(outputs) if outputs else torch.empty(0)


@torch.no_grad()
def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                num_classes: int, k: int = 200, temperature: float = 0.1, chunk_size: int = 1024) -> torch.Tensor:
    r"""Weighted kNN class scores ``[N_test, C]``.

    .. math:: \text{score}_c(x) = \sum_{i \in \mathcal{N}_k(x)} \exp(s_i/\tau)\,[y_i = c],
              \quad s_i = \frac{f(x)\cdot f(x_i)}{\lVert f(x)\rVert\,\lVert f(x_i)\rVert}

    ``train_features [N,D]``, ``train_labels [N]`` (int64), ``test_features [M,D]``. ``k`` is
    capped at ``N`` so a small bank (smoke mode) still works.
    """
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"expected train [N,D] and test [M,D] features with the same D, got "
                         f"{tuple(train_features.shape)} and {tuple(test_features.shape)}")
    if train_labels.shape != (train_features.shape[0],):
        raise ValueError(f"train_labels must be [N]={train_features.shape[0]}, got {tuple(train_labels.shape)}")
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    bank = F.normalize(train_features.float(), dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for start in range(0, test_features.shape[0], chunk_size):
        query = F.normalize(test_features[start:start + chunk_size].float(), dim=1)
        similarity, index = (query @ bank.T).topk(k, dim=1)
        weights = (similarity / temperature).exp()
        one_hot = F.one_hot(train_labels[index], num_classes).float()
        scores.append((weights.unsqueeze(-1) * one_hot).sum(1))
    return torch.cat(scores)


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, k: int = 200, temperature: float = 0.1) -> float:
    """Fraction of test points whose weighted-kNN vote (see :func:`knn_predict`) is right."""
    scores = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    return (scores.argmax(1) == test_labels.to(scores.device)).float().mean().item()


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, weight_decay: float = 1e-3,
                 max_iter: int = 200) -> float:
    """Test accuracy of a logistic-regression head fitted on frozen features.

    The features are standardised with the *training* mean and std, then a linear layer is fitted
    by full-batch L-BFGS on cross-entropy + ``weight_decay``·‖W‖². Full-batch L-BFGS is
    deterministic and converges in a second on a few thousand labelled features.
    """
    if train_features.shape[0] != train_labels.shape[0] or test_features.shape[0] != test_labels.shape[0]:
        raise ValueError("features and labels must have the same number of rows")
    if train_features.shape[0] == 0:
        raise ValueError("linear_probe needs at least one labelled feature")
    x_train, x_test = train_features.float(), test_features.float()
    mean, std = x_train.mean(0, keepdim=True), x_train.std(0, keepdim=True, unbiased=False) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = train_labels.to(x_train.device)
    with torch.enable_grad():
        generator = torch.Generator().manual_seed(0)
        head = nn.Linear(x_train.shape[1], num_classes).to(x_train.device)
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator).to(x_train.device) * 0.01)
            head.bias.zero_()
        optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(head(x_train), y_train) + weight_decay * head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        predictions = head(x_test).argmax(1)
    return (predictions == test_labels.to(predictions.device)).float().mean().item()


@torch.no_grad()
def classifier_accuracy(predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                        labels: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of ``uint8`` images whose arg-max of ``predict(normalised images)`` equals the label."""
    logits = extract_features(predict, images, batch_size)
    return (logits.argmax(1) == labels.to(logits.device)).float().mean().item()


@torch.no_grad()
def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[C]`` accuracy of each class (NaN for a class absent from ``labels``)."""
    correct = torch.zeros(num_classes)
    total = torch.zeros(num_classes)
    predictions, labels = predictions.cpu(), labels.cpu()
    correct.index_add_(0, labels, (predictions == labels).float())
    total.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float))
    return correct / total


def evaluate_method(method, data, knn: bool = True, probe: bool = True, classifier: bool = True,
                    k: int = 200, temperature: float = 0.1, knn_bank_size: int | None = None,
                    batch_size: int = 512) -> dict[str, float]:
    """All metrics of a trained method on ``data`` (a :class:`ssl_course.data.DataBundle`).

    Returns a dict with ``knn_accuracy``, ``linear_probe_accuracy`` and ``classifier_accuracy``
    where asked for and applicable, and ``test_accuracy``: the method's own classifier if it has
    one, else the linear probe on the labelled subset. ``knn_bank_size`` limits the kNN bank to a
    deterministic subset (every ``N // size``-th training image) for speed.
    """
    was_training = method.training
    method.eval()
    try:
        method.prepare_evaluation(data)
        results: dict[str, float] = {}
        test_features = None
        if knn or probe:
            test_features = extract_features(method.embed, data.test_images, batch_size)
        if knn:
            train_size = data.train_images.shape[0]
            bank_index = evenly_spaced(train_size, knn_bank_size or train_size, device=data.train_images.device)
            bank = extract_features(method.embed, data.train_images[bank_index], batch_size)
            results["knn_accuracy"] = knn_accuracy(bank, data.train_labels[bank_index], test_features,
                                                   data.test_labels, data.num_classes, k, temperature)
        if probe:
            labeled = extract_features(method.embed, data.train_images[data.labeled_idx], batch_size)
            results["linear_probe_accuracy"] = linear_probe(labeled, data.train_labels[data.labeled_idx],
                                                            test_features, data.test_labels, data.num_classes)
        if classifier and method.has_classifier:
            results["classifier_accuracy"] = classifier_accuracy(method.predict, data.test_images,
                                                                 data.test_labels, batch_size)
            results["test_accuracy"] = results["classifier_accuracy"]
        elif "linear_probe_accuracy" in results:
            results["test_accuracy"] = results["linear_probe_accuracy"]
        return results
    finally:
        method.train(was_training)
