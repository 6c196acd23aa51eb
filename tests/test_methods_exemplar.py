"""Exemplar and S4L-Exemplar: registered with the paper's settings, train through the engine, and learn."""
from __future__ import annotations

import pytest
import torch

from ssl_course.data import make_bundle
from ssl_course.methods import build_method
from ssl_course.methods.exemplar import Exemplar
from ssl_course.methods.s4l_exemplar import S4LExemplar
from ssl_course.models import small_net
from ssl_course.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def test_exemplar_is_registered_with_one_class_per_cifar_image():
    method = build_method("exemplar", small_net(8), 10)
    assert isinstance(method, Exemplar) and method.data_sources == ("all",)
    assert method.num_exemplars == 50_000 and method.exemplar_head[-1].out_features == 50_000
    assert method.predict(torch.zeros(2, 3, 32, 32)) is None
    with pytest.raises(ValueError, match="num_exemplars"):
        build_method("exemplar", small_net(8), 10, num_exemplars=1)


def test_exemplar_says_how_to_fix_a_too_small_classifier(tiny_bundle):
    method = build_method("exemplar", "tiny", 10, num_exemplars=100)      # 1000 training images
    with pytest.raises(ValueError, match="num_exemplars equal to the training-set size"):
        fit(method, tiny_bundle, TrainConfig(max_steps=3, batch_size=64, progress=False, monitor_every=0))


def test_s4l_exemplar_is_registered_with_the_official_settings():
    method = build_method("s4l_exemplar", small_net(8), 10)
    assert isinstance(method, S4LExemplar) and method.has_classifier
    assert (method.copies, method.embed_dim, method.triplet_weight) == (8, 1000, 1.0)
    assert method.data_sources == ("labeled", "unlabeled") and method.default_unlabeled_ratio == 1
    assert method.predict(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow
def test_exemplar_learns_its_surrogate_task():
    """Fresh random views of 120 training images must be assigned to their own image more often.

    Measured (CPU, one thread, 80 steps of 32 at lr 0.1, seeds 0/1/2): surrogate accuracy
    0.008/0.000/0.017 -> 0.108/0.050/0.067 (chance 1/120 = 0.008); the margin is half the smallest gain.
    """
    # val_size=0: all 120 images are exemplars, as when the test was calibrated
    data = make_bundle("synthetic", num_labels=50, seed=0, device="cpu", train_subset=120, test_subset=100,
                       val_size=0)
    torch.manual_seed(0)
    method = build_method("exemplar", "tiny", 10, num_exemplars=120)
    index = torch.arange(120)
    method.eval()
    before = method.surrogate_accuracy(data.train_images, index, torch.Generator().manual_seed(5))
    history = fit(method, data, TrainConfig(max_steps=80, batch_size=32, lr=0.1, seed=0, device="cpu",
                                            progress=False, monitor_every=0))
    method.eval()
    after = method.surrogate_accuracy(data.train_images, index, torch.Generator().manual_seed(5))
    assert history.loss[-1] < history.loss[0], history.loss
    assert after > before + 0.02, (before, after)


def test_s4l_exemplar_step_groups_the_copies_of_each_image_as_one_identity(monkeypatch):
    """The step makes K copies copy-major (row k·B + b is copy k of image b) and must regroup them
    image by image before the triplet loss. With the augmentation replaced by the identity, the K
    copies of an image are equal, so: each group holds K equal embeddings of *its* image, the
    labelled copies carry their own image's label, and the logged triplet loss is the one of the
    right grouping, not of the copy-major rows read as if they were image-major."""
    from ssl_course.data.augment import normalize
    from ssl_course.losses import s4l_exemplar_loss
    from ssl_course.methods import s4l_exemplar as module
    from ssl_course.methods.base import Batch, StepInfo

    captured = {}

    def spy(logits, labels, embeddings_labeled, embeddings_unlabeled, weight):
        captured.update(logits=logits, labels=labels, labeled=embeddings_labeled, unlabeled=embeddings_unlabeled)
        return s4l_exemplar_loss(logits, labels, embeddings_labeled, embeddings_unlabeled, weight)

    monkeypatch.setattr(module, "contrastive_augment", lambda x, generator=None, gray_prob=0.0: normalize(x))
    monkeypatch.setattr(module, "s4l_exemplar_loss", spy)
    torch.manual_seed(0)
    method = build_method("s4l_exemplar", "tiny", 10, copies=4, embed_dim=16).eval()   # eval: fixed BN statistics
    gen = torch.Generator().manual_seed(1)
    labeled = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=gen)
    unlabeled = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.tensor([2, 7, 4])
    out = method.training_step(Batch(labeled, labels, unlabeled, torch.arange(5), gen), StepInfo(0, 0, 0.0, 1))

    with torch.no_grad():
        own_unlabeled = method.embedding_head(method.backbone(normalize(unlabeled)))          # [B_u, D]
        own_labeled = method.backbone(normalize(labeled))
        # group b = the 4 copies of unlabelled image b, in the batch's order
        torch.testing.assert_close(captured["unlabeled"], own_unlabeled[:, None].expand(5, 4, 16), atol=1e-5, rtol=0)
        torch.testing.assert_close(captured["labeled"], method.embedding_head(own_labeled)[:, None].expand(3, 4, 16),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(captured["logits"], method.classifier(own_labeled)[:, None].expand(3, 4, 10),
                                   atol=1e-5, rtol=0)
        assert torch.equal(captured["labels"], labels)
        # the wrong layout: the copy-major rows [K·B, D] cut into consecutive blocks of K
        rows_labeled = own_labeled.repeat(4, 1)
        rows_unlabeled = method.backbone(normalize(unlabeled)).repeat(4, 1)
        _, _, wrong = s4l_exemplar_loss(method.classifier(rows_labeled).view(3, 4, 10), labels,
                                        method.embedding_head(rows_labeled).view(3, 4, 16),
                                        method.embedding_head(rows_unlabeled).view(5, 4, 16))
    right = out.logs["loss_triplet"]
    assert torch.isclose(right, s4l_exemplar_loss(captured["logits"], labels, captured["labeled"],
                                                  captured["unlabeled"])[2])
    # identical copies as positives cost less than strangers (measured: 0.687 against 0.701; the
    # untrained embeddings lie close together, so the gap is small but fixed by the seeds)
    assert wrong > right + 0.005, (wrong, right)
