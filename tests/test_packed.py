"""The compact CIFAR-10 pack: a lossy but close round trip, found by the ordinary loader, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_course.data import cifar10
from ssl_course.data.packed import PACK_FOLDER, PACK_NAME, find_pack, load_pack, pack_info, write_pack


def _smooth_images(n: int, seed: int) -> torch.Tensor:
    """Photograph-like images (smooth gradients): what JPEG is made for, unlike uniform noise."""
    generator = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, 32)
    base = ramp[None, None, :, None] * ramp[None, None, None, :]                       # [1, 1, 32, 32]
    tint = torch.rand(n, 3, 1, 1, generator=generator)                                 # [n, 3, 1, 1]
    return (255 * (0.2 + 0.6 * tint * base)).round().to(torch.uint8)                   # [n, 3, 32, 32]


@pytest.fixture
def packed_root(tmp_path):
    train = (_smooth_images(20, 0), torch.arange(20) % 10)
    test = (_smooth_images(10, 1), torch.arange(10) % 10)
    write_pack(tmp_path / PACK_FOLDER / PACK_NAME, train, test, tuple(f"class{i}" for i in range(10)))
    cifar10.clear_cache()
    yield tmp_path, train, test
    cifar10.clear_cache()


def test_round_trip_is_close_and_keeps_labels(packed_root):
    root, train, test = packed_root
    for split, (images, labels) in ((True, train), (False, test)):
        loaded, loaded_labels = load_pack(find_pack(root), train=split)
        assert loaded.dtype == torch.uint8 and loaded.shape == images.shape
        assert torch.equal(loaded_labels, labels)
        assert (loaded.float() - images.float()).abs().mean() < 3.0   # JPEG q75 on smooth images: a few levels


def test_the_ordinary_loader_reads_the_pack_when_the_pickles_are_missing(packed_root):
    root, train, _ = packed_root
    assert cifar10.cifar10_available(root)
    images, labels = cifar10.load_cifar10(root, train=True, download=False)
    assert images.shape == train[0].shape and torch.equal(labels, train[1])
    assert cifar10.class_names(root)[3] == "class3"
    assert pack_info(find_pack(root))["jpeg_quality"] == 75


def test_a_truncated_pack_says_how_to_fix_it(tmp_path):
    path = tmp_path / PACK_NAME
    np.savez(path, train_jpeg=np.zeros(5, np.uint8), train_offsets=np.array([0, 3, 9]), train_labels=np.zeros(2))
    with pytest.raises(ValueError, match="gpu_day.py pack"):
        load_pack(path, train=True)
    with pytest.raises(ValueError, match="gpu_day.py pack"):
        load_pack(path, train=False)


def test_bad_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"uint8 \[N, 3, 32, 32\]"):
        write_pack(tmp_path / "x.npz", (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), torch.zeros(2)),
                   (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1)), ("a",))
