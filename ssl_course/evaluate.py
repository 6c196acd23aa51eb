"""Evaluation: features, weighted kNN, a linear probe on the few labels, classifier accuracy.

Protocols (and why):

* **Weighted kNN** (Wu et al. 2018, "Unsupervised feature learning via non-parametric instance
  discrimination"; the monitor used by InstDisc, MoCo's CIFAR demo and solo-learn): cosine
  similarity, the ``k = 200`` nearest bank features (all of them if the bank is smaller) vote for
  their class with weight ``exp(s / 0.1)``. Two banks:

  - ``knn_accuracy``: the *labelled images only* (e.g. 250): the few-label number, what the
    representation gives a learner that has only those labels (the same idea as PAWS's soft
    nearest neighbours over its labelled support set); cheap.
  - ``knn_all_labels_accuracy`` (asked for with ``knn_bank="all"`` or a bank size): the features
    *and labels of every training image*, the representation-learning convention: it measures how
    well classes are separated, not what a few-label learner could do. On a CPU its 45,000-image
    feature extraction costs more than a short run's training, hence off by default.
* **Linear probe**: a logistic-regression head trained on frozen features of the *labelled
  subset only* (no augmentation), then applied to the validation and test images.
* **Classifier accuracy**: for methods that train a classifier (supervised, FixMatch, …), the
  fraction of images whose arg-max logit is the true class.

Every number is reported on the validation split (``val_`` prefix; it steers the monitor and any
choice of hyper-parameter) and on the test split (read only for the final report).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ssl_course import reference
from ssl_course.data.augment import normalize
from ssl_course.data.splits import evenly_spaced


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _network_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B,3,H,W]`` → normalised float, stored channels-last: the convolutions then run about
    1.4× faster on a CPU (measured on the small backbone) and give the same values up to float rounding."""
    return normalize(images).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """The probe's L-BFGS is hundreds of tiny operations: on a CPU, one thread avoids the cost of
    waking the others for each (measured 0.2 s instead of 12 s for 250 features on a busy machine)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
            out = fn(_network_input(images[start:start + batch_size]))
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


@dataclass
class LinearProbe:
    """A fitted logistic-regression head on standardised frozen features (see :func:`fit_linear_probe`)."""

    mean: torch.Tensor     # [1, D] training-feature mean
    std: torch.Tensor      # [1, D] training-feature std
    head: nn.Linear        # D -> C

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Class ids ``[M]`` of ``features [M, D]``."""
        return self.head((features.float() - self.mean) / self.std).argmax(1)

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        if features.shape[0] != labels.shape[0]:
            raise ValueError("features and labels must have the same number of rows")
        predictions = self.predict(features)
        return (predictions == labels.to(predictions.device)).float().mean().item()


def fit_linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, num_classes: int,
                     weight_decay: float = 1e-3, max_iter: int = 200, progress: bool = False) -> LinearProbe:
    r"""Fit a logistic-regression head on frozen features ``[N, D]`` with labels ``[N]``.

    The features are standardised with their mean and std, then a linear layer is fitted by
    full-batch L-BFGS on :math:`\mathrm{CE} + \lambda\lVert W\rVert^2` (``weight_decay`` = λ).
    Full-batch L-BFGS is deterministic and converges in a second on a few thousand labelled
    features. ``progress`` shows a bar over its function evaluations (at most ``max_iter``).
    """
    if train_features.shape[0] != train_labels.shape[0]:
        raise ValueError("features and labels must have the same number of rows")
    if train_features.shape[0] == 0:
        raise ValueError("linear_probe needs at least one labelled feature")
    x_train = train_features.float()
    mean, std = x_train.mean(0, keepdim=True), x_train.std(0, keepdim=True, unbiased=False) + 1e-6
    x_train = (x_train - mean) / std
    y_train = train_labels.to(x_train.device)
    bar = tqdm(total=max_iter, desc="linear probe (L-BFGS)", leave=False, disable=not progress)
    with torch.enable_grad(), _one_cpu_thread(x_train.device):
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
            bar.update(1)
            return loss

        optimizer.step(closure)
    bar.close()
    return LinearProbe(mean=mean, std=std, head=head)


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, weight_decay: float = 1e-3,
                 max_iter: int = 200) -> float:
    """Test accuracy of a logistic-regression head fitted on frozen features (:func:`fit_linear_probe`)."""
    if test_features.shape[0] != test_labels.shape[0]:
        raise ValueError("features and labels must have the same number of rows")
    probe = fit_linear_probe(train_features, train_labels, num_classes, weight_decay, max_iter)
    return probe.accuracy(test_features, test_labels)


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


#: ``knn_bank`` values of :func:`evaluate_method` besides an int (an all-labels bank of that many images).
KNN_BANKS = ("labeled", "all")


def check_knn_bank(knn_bank: str | int) -> str | int:
    """``knn_bank`` if it is ``"labeled"``, ``"all"`` or a positive int, else a ``ValueError`` saying so."""
    if knn_bank in KNN_BANKS or (isinstance(knn_bank, int) and not isinstance(knn_bank, bool) and knn_bank > 0):
        return knn_bank
    raise ValueError(f"knn_bank (--knn-bank) must be 'labeled' (the few labelled images are the kNN bank), 'all' "
                     f"(also report knn_all_labels_accuracy with every training image) or a positive number of "
                     f"training images for that all-labels bank; got {knn_bank!r}")


def _split_images(data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("val", "test"):
        raise ValueError(f"splits must name 'val' and/or 'test', got {split!r}")
    return (data.val_images, data.val_labels) if split == "val" else (data.test_images, data.test_labels)


def evaluate_method(method, data, knn: bool = True, probe: bool = True, classifier: bool = True,
                    k: int = 200, temperature: float = 0.1, knn_bank: str | int = "labeled",
                    splits: tuple[str, ...] = ("val", "test"), batch_size: int = 512,
                    progress: bool = False) -> dict[str, float]:
    """All metrics of a trained method on the validation and test splits of ``data`` (a
    :class:`ssl_course.data.DataBundle`).

    What each number is (test split; the validation split's carry a ``val_`` prefix, e.g.
    ``val_accuracy``, ``val_knn_accuracy``; an empty validation split gives none):

    * ``knn_accuracy``: weighted kNN whose bank is the *labelled images only*: what a learner with
      the few labels can do with the representation (the idea of PAWS's soft nearest neighbours).
    * ``knn_all_labels_accuracy`` (when ``knn_bank`` is ``"all"`` or an int): the
      representation-learning convention, a bank of every training image *with its label*
      (``"all"``), or of an evenly spaced subset of ``knn_bank`` images (faster, noisier).
    * ``linear_probe_accuracy``: logistic regression on frozen features of the labelled images.
    * ``classifier_accuracy``: the method's own classifier, if it has one.
    * ``accuracy`` (reported as ``test_accuracy`` / ``val_accuracy``): the classifier if there is
      one, else the linear probe.

    The bank and probe features are computed once and shared by both splits. ``progress`` shows a
    ``tqdm.auto`` bar per feature extraction.
    """
    check_knn_bank(knn_bank)
    for split in splits:
        _split_images(data, split)
    # present mode: a reference run's recorded metrics; record mode: keep them for present mode
    key = reference.evaluation_key(knn=knn, probe=probe, classifier=classifier, k=k, temperature=temperature,
                                   knn_bank=knn_bank, splits=list(splits))
    stored = reference.stored_evaluation(method, key)
    if stored is not None:
        return dict(stored)
    results = _evaluate(method, data, knn, probe, classifier, k, temperature, knn_bank, splits, batch_size, progress)
    reference.store_evaluation(method, key, results)
    return results


def _evaluate(method, data, knn: bool, probe: bool, classifier: bool, k: int, temperature: float,
              knn_bank: str | int, splits: tuple[str, ...], batch_size: int, progress: bool) -> dict[str, float]:
    was_training = method.training
    method.eval()
    try:
        method.prepare_evaluation(data)

        def features(images: torch.Tensor, desc: str) -> torch.Tensor:
            return extract_features(method.embed, images, batch_size, progress=progress, desc=desc)

        labeled_images, labeled_labels = data.train_images[data.labeled_idx], data.train_labels[data.labeled_idx]
        labeled = features(labeled_images, "features: labelled") if knn or probe else None
        bank = bank_labels = None
        if knn and knn_bank != "labeled":
            train_size = data.train_images.shape[0]
            size = train_size if knn_bank == "all" else knn_bank
            bank_index = evenly_spaced(train_size, size, device=data.train_images.device)
            bank = features(data.train_images[bank_index], "features: kNN bank (all labels)")
            bank_labels = data.train_labels[bank_index]
        head = fit_linear_probe(labeled, labeled_labels, data.num_classes, progress=progress) if probe else None
        results: dict[str, float] = {}
        for split in splits:
            images, labels = _split_images(data, split)
            if images.shape[0] == 0:
                continue
            prefix = "val_" if split == "val" else ""
            scores: dict[str, float] = {}
            queries, logits = _features_and_logits(method, images, knn or probe, classifier and method.has_classifier,
                                                   batch_size, progress, split)
            if knn:
                scores["knn_accuracy"] = knn_accuracy(labeled, labeled_labels, queries, labels,
                                                      data.num_classes, k, temperature)
                if bank is not None:
                    scores["knn_all_labels_accuracy"] = knn_accuracy(bank, bank_labels, queries, labels,
                                                                     data.num_classes, k, temperature)
            if head is not None:
                scores["linear_probe_accuracy"] = head.accuracy(queries, labels)
            if logits is not None:
                scores["classifier_accuracy"] = (logits.argmax(1) == labels.to(logits.device)).float().mean().item()
            headline = scores.get("classifier_accuracy", scores.get("linear_probe_accuracy"))
            if headline is not None:
                scores["accuracy"] = headline
            results.update({_metric_name(prefix, name): value for name, value in scores.items()})
        return results
    finally:
        method.train(was_training)


@torch.no_grad()
def _features_and_logits(method, images: torch.Tensor, want_features: bool, want_logits: bool, batch_size: int,
                         progress: bool, split: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Embeddings ``[N, D]`` and/or class logits ``[N, C]`` of ``images`` in one pass over them
    (:meth:`Method.embed_and_predict`: one backbone forward per batch for most classifiers)."""
    if not want_logits:
        return (extract_features(method.embed, images, batch_size, progress=progress, desc=f"features: {split}")
                if want_features else None), None
    if not want_features:
        return None, extract_features(method.predict, images, batch_size, progress=progress,
                                      desc=f"classifier: {split}")
    features, logits = [], []
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc=f"features and classifier: {split}", leave=False, disable=not progress):
        with _autocast(images.device):
            embedded, predicted = method.embed_and_predict(_network_input(images[start:start + batch_size]))
        features.append(embedded.float())
        logits.append(predicted.float())
    return torch.cat(features), torch.cat(logits)


def _metric_name(prefix: str, name: str) -> str:
    """``accuracy`` becomes ``test_accuracy`` / ``val_accuracy``; the others get the split's prefix."""
    if name == "accuracy":
        return "val_accuracy" if prefix else "test_accuracy"
    return prefix + name
