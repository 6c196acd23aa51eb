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


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
