"""Tests of ssl_course.data: CIFAR-10 loading, the synthetic dataset, splits, bundles, batches.

Tests marked ``cifar`` use the real CIFAR-10 copy (``$SSL_COURSE_DATA`` or ``<repo>/data``) and
are skipped when it is not there; everything else runs on synthetic data or tiny fake pickles.
"""
from __future__ import annotations

import itertools
import pickle
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_course.data import (
    CIFAR10_CLASSES,
    DATASETS,
    SYNTHETIC_CLASSES,
    DataBundle,
    balanced_subset,
    cifar10_available,
    class_balanced_batch,
    default_val_size,
    few_label_split,
    index_stream,
    load_cifar10,
    load_dataset,
    make_bundle,
    synthetic_dataset,
    validation_split,
)
from ssl_course.data import cifar10 as cifar10_module

needs_cifar = pytest.mark.skipif(not cifar10_available(),
                                 reason="real CIFAR-10 not found (set SSL_COURSE_DATA, see data/README.md)")


# ---------------------------------------------------------------------------------------------
# Fake CIFAR-10 pickles in the official format
# ---------------------------------------------------------------------------------------------

def _write_fake_cifar(root: Path, per_batch: int = 20, test_size: int = 10, str_keys: bool = False,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write ``root/cifar-10-batches-py/`` like the official archive (protocol 2, bytes keys).

    Returns all training rows ``uint8 [5*per_batch, 3072]`` and labels, for comparison.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def key(k: str) -> str | bytes:
        return k if str_keys else k.encode()

    def dump(name: str, obj: dict) -> None:
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    rows, labels = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        lab = rng.integers(0, 10, size=per_batch).tolist()
        rows.append(data)
        labels.extend(lab)
        dump(f"data_batch_{i}", {key("batch_label"): key(f"training batch {i} of 5"), key("labels"): lab,
                                 key("data"): data, key("filenames"): [key(f"{j}.png") for j in range(per_batch)]})
    test = rng.integers(0, 256, size=(test_size, 3072), dtype=np.uint8)
    dump("test_batch", {key("batch_label"): key("testing batch 1 of 1"), key("labels"): list(range(test_size)),
                        key("data"): test})
    dump("batches.meta", {key("label_names"): [key(n.upper()) for n in CIFAR10_CLASSES],
                          key("num_cases_per_batch"): per_batch, key("num_vis"): 3072})
    return np.concatenate(rows), np.asarray(labels)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test sees an empty loader cache (fake folders reuse tmp paths across runs)."""
    cifar10_module.clear_cache()
    yield
    cifar10_module.clear_cache()


def test_loader_reads_official_format(tmp_path):
    rows, labels = _write_fake_cifar(tmp_path)
    images, y = load_cifar10(tmp_path, train=True, download=False)
    assert images.shape == (100, 3, 32, 32) and images.dtype == torch.uint8 and images.is_contiguous()
    assert y.shape == (100,) and y.dtype == torch.int64 and y.is_contiguous()
    assert torch.equal(y, torch.from_numpy(labels))
    # Row layout: 1024 red, then green, then blue values, each plane row-major.
    first = rows[0]
    assert images[0, 0, 0, 0] == first[0] and images[0, 0, 0, 1] == first[1]
    assert images[0, 0, 1, 0] == first[32] and images[0, 1, 0, 0] == first[1024]
    assert images[0, 2, 31, 31] == first[3071]
    test_images, test_labels = load_cifar10(tmp_path, train=False, download=False)
    assert test_images.shape == (10, 3, 32, 32) and test_labels.tolist() == list(range(10))


def test_loader_accepts_batch_folder_itself_and_str_keys(tmp_path):
    _write_fake_cifar(tmp_path, str_keys=True)
    a, ya = load_cifar10(tmp_path, download=False)
    b, yb = load_cifar10(tmp_path / "cifar-10-batches-py", download=False)
    assert torch.equal(a, b) and torch.equal(ya, yb)


def test_class_names_from_meta(tmp_path):
    _write_fake_cifar(tmp_path)
    assert cifar10_module.class_names(tmp_path) == tuple(n.upper() for n in CIFAR10_CLASSES)
    assert cifar10_available(tmp_path)
    assert not cifar10_available(tmp_path / "nowhere")


def test_loader_cache_returns_same_tensors(tmp_path):
    _write_fake_cifar(tmp_path)
    first = load_cifar10(tmp_path, download=False)
    second = load_cifar10(tmp_path / "cifar-10-batches-py", download=False)   # same resolved folder
    assert first[0] is second[0] and first[1] is second[1]


def test_loader_uses_data_root_env(tmp_path, monkeypatch):
    _write_fake_cifar(tmp_path)
    monkeypatch.setenv("SSL_COURSE_DATA", str(tmp_path))
    images, _ = load_cifar10(download=False)
    assert images.shape[0] == 100


def test_missing_without_download_names_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path / "empty", download=False)
    message = str(err.value)
    assert str(tmp_path / "empty") in message and "SSL_COURSE_DATA" in message


def test_offline_download_failure_is_file_not_found(tmp_path, monkeypatch):
    """Simulate an offline machine at torchvision's download function."""
    import torchvision.datasets.utils as tv_utils

    calls = []

    def offline(url, download_root, **kwargs):
        calls.append((url, download_root))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path, download=True)
    message = str(err.value)
    assert str(tmp_path) in message and "cifar-10-python.tar.gz" in message and "SSL_COURSE_DATA" in message
    assert calls and calls[0][0] == cifar10_module.CIFAR10_URL and Path(calls[0][1]) == tmp_path


def test_download_into_parent_when_root_is_batch_folder(tmp_path, monkeypatch):
    """A successful (fake) download is used; pointing at the batch folder downloads one level up."""
    targets = []

    def fake_download(root: Path) -> None:
        targets.append(root)
        _write_fake_cifar(root)

    monkeypatch.setattr(cifar10_module, "_download", fake_download)
    images, _ = load_cifar10(tmp_path / "cifar-10-batches-py", download=True)
    assert targets == [tmp_path] and images.shape == (100, 3, 32, 32)


def test_corrupt_batch_raises_value_error(tmp_path):
    _write_fake_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 10), np.uint8), b"labels": [0, 1, 2]}, f, protocol=2)
    with pytest.raises(ValueError, match="unexpected layout"):
        load_cifar10(tmp_path, train=False, download=False)


@pytest.mark.cifar
@needs_cifar
def test_real_cifar10():
    x, y = load_cifar10(train=False, download=False)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.dtype == torch.int64
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(y).tolist() == [1000] * 10
    xtr, ytr = load_cifar10(train=True, download=False)
    assert xtr.shape == (50000, 3, 32, 32)
    assert torch.bincount(ytr).tolist() == [5000] * 10
    assert torch.bincount(ytr[:10000], minlength=10).tolist() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001,
                                                                   1025, 981]
    assert cifar10_module.class_names() == CIFAR10_CLASSES
    # Channel means match the published CIFAR-10 statistics (a wrong reshape would not).
    means = xtr[:5000].float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01)
    again = load_cifar10(train=True, download=False)   # cached: the very same tensors
    assert again[0] is xtr and again[1] is ytr


# ---------------------------------------------------------------------------------------------
# Synthetic dataset
# ---------------------------------------------------------------------------------------------

def test_synthetic_shapes_balance_and_order():
    x, y = synthetic_dataset(num_per_class=30)
    assert x.shape == (300, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.shape == (300,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [30] * 10
    assert not torch.equal(y, y.sort().values)          # shuffled, not grouped by class
    assert len(SYNTHETIC_CLASSES) == 10
    small, _ = synthetic_dataset(num_per_class=2, image_size=16)
    assert small.shape == (20, 3, 16, 16)


def test_synthetic_determinism_and_streams():
    a = synthetic_dataset(20, seed=3)
    b = synthetic_dataset(20, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], synthetic_dataset(20, seed=4)[0])
    test = synthetic_dataset(20, seed=3, train=False)
    assert not torch.equal(a[0], test[0])
    # No test image is a copy of a training image.
    assert torch.cdist(a[0].flatten(1).float(), test[0].flatten(1).float()).min() > 0


def test_synthetic_is_fast():
    synthetic_dataset(10)                                # warm-up
    # CPU time of this process (all threads), so other jobs on a shared machine do not count.
    start = time.process_time()
    synthetic_dataset(500)                               # 5,000 images
    assert time.process_time() - start < 3.0             # ~0.3-0.5 s on the 2-core course box


def test_synthetic_classes_are_distinguishable():
    """Nearest class mean on a translation-invariant feature (FFT magnitude) is far above chance.

    Raw pixels are deliberately not enough: position, colour and polarity vary per image.
    """
    def features(images: torch.Tensor) -> torch.Tensor:
        gray = images.float().mean(1) / 255
        spectrum = torch.fft.fft2(gray - gray.mean(dim=(1, 2), keepdim=True)).abs().flatten(1)
        return spectrum / spectrum.norm(dim=1, keepdim=True)

    x, y = synthetic_dataset(60)
    xt, yt = synthetic_dataset(30, train=False)
    f, ft = features(x), features(xt)
    means = torch.stack([f[y == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(ft, means).argmin(1) == yt).float().mean().item()
    assert accuracy > 0.8, accuracy


def test_synthetic_argument_errors():
    with pytest.raises(ValueError, match="num_per_class"):
        synthetic_dataset(0)
    with pytest.raises(ValueError, match="image_size"):
        synthetic_dataset(2, image_size=4)


# ---------------------------------------------------------------------------------------------
# Few-label splits
# ---------------------------------------------------------------------------------------------

def _cifar_like_labels(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.arange(10).repeat_interleave(5000)[torch.randperm(50000, generator=g)]


@pytest.mark.parametrize("num_labels", [40, 250, 4000])
def test_split_properties_cifar_sizes(num_labels):
    labels = _cifar_like_labels()
    lab, unl = few_label_split(labels, num_labels, seed=1)
    assert lab.dtype == torch.int64 and unl.dtype == torch.int64
    assert torch.equal(lab, lab.sort().values) and torch.equal(unl, unl.sort().values)
    assert len(lab) == num_labels and len(lab) + len(unl) == 50000
    assert torch.equal(torch.cat([lab, unl]).sort().values, torch.arange(50000))     # disjoint + covering
    assert torch.bincount(labels[lab], minlength=10).tolist() == [num_labels // 10] * 10


def test_split_determinism_seeds_and_nesting():
    labels = _cifar_like_labels()
    a, _ = few_label_split(labels, 250, seed=0)
    b, _ = few_label_split(labels, 250, seed=0)
    c, _ = few_label_split(labels, 250, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    small, _ = few_label_split(labels, 40, seed=0)
    assert torch.isin(small, a).all()                    # same seed: 40 labels inside the 250


def test_split_accepts_lists_numpy_and_num_classes():
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2]
    lab, unl = few_label_split(np.asarray(labels), 3)
    assert torch.bincount(torch.tensor(labels)[lab]).tolist() == [1, 1, 1]
    lab, _ = few_label_split(labels, 6, num_classes=3)
    assert len(lab) == 6


@pytest.mark.parametrize("labels, num_labels, kwargs, match", [
    (torch.arange(10).repeat(5), 15, {}, "multiple of num_classes"),
    (torch.arange(10).repeat(5), 0, {}, "positive int"),
    (torch.arange(10).repeat(5), -10, {}, "positive int"),
    (torch.arange(10).repeat(5), 60, {}, "has only 5 images"),
    (torch.arange(10).repeat(5).view(5, 10), 10, {}, "1-D integer"),
    (torch.arange(10).repeat(5).float(), 10, {}, "1-D integer"),
    (torch.arange(10).repeat(5), 10, {"num_classes": 5}, "num_classes=5"),
    (torch.tensor([0, 1, -1]), 2, {}, ">= 0"),
])
def test_split_errors(labels, num_labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        few_label_split(labels, num_labels, **kwargs)


# ---------------------------------------------------------------------------------------------
# load_dataset, DataBundle, make_bundle
# ---------------------------------------------------------------------------------------------

def test_load_dataset_names():
    assert DATASETS == ("cifar10", "synthetic")
    x, y = load_dataset("synthetic", train=False, num_per_class=3)
    assert x.shape == (30, 3, 32, 32) and y.shape == (30,)
    with pytest.raises(ValueError, match="cifar10.*synthetic"):
        load_dataset("mnist")


def test_make_bundle_synthetic_subsets_and_to():
    data = make_bundle("synthetic", num_labels=40, seed=0, train_subset=1000, test_subset=200)
    assert isinstance(data, DataBundle) and data.name == "synthetic"
    # the default validation split: a tenth of the (subset of the) training set, class-balanced
    assert data.val_images.shape == (100, 3, 32, 32) and data.val_size == 100
    assert data.train_images.shape == (900, 3, 32, 32) and data.test_images.shape == (200, 3, 32, 32)
    assert torch.bincount(data.train_labels).tolist() == [90] * 10
    assert torch.bincount(data.val_labels).tolist() == [10] * 10
    assert torch.bincount(data.test_labels).tolist() == [20] * 10
    assert data.num_classes == 10 and data.class_names == SYNTHETIC_CLASSES and data.num_labels == 40
    assert torch.bincount(data.train_labels[data.labeled_idx]).tolist() == [4] * 10
    # the unlabelled pool is every training image, the labelled ones included (FixMatch's convention)
    assert torch.equal(data.unlabeled_idx, torch.arange(900))
    again = make_bundle("synthetic", num_labels=40, seed=1, train_subset=1000, test_subset=200)
    assert torch.equal(again.train_images, data.train_images)           # subset independent of seed
    assert not torch.equal(again.labeled_idx, data.labeled_idx)         # split depends on seed
    moved = data.to("cpu")
    assert moved.device == torch.device("cpu") and "labeled=40" in repr(moved)
    with pytest.raises(ValueError, match="class-balanced subset of 1001"):
        make_bundle("synthetic", num_labels=40, train_subset=1001)


def _image_keys(images: torch.Tensor) -> set[bytes]:
    return {bytes(image.flatten().tolist()) for image in images}


def test_validation_split_is_balanced_disjoint_and_deterministic():
    labels = _cifar_like_labels()
    train_idx, val_idx = validation_split(labels, 500, seed=3)
    assert torch.bincount(labels[val_idx]).tolist() == [50] * 10
    assert len(set(train_idx.tolist()) & set(val_idx.tolist())) == 0
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(len(labels)))
    again_train, again_val = validation_split(labels, 500, seed=3)
    assert torch.equal(again_val, val_idx) and torch.equal(again_train, train_idx)
    assert not torch.equal(validation_split(labels, 500, seed=4)[1], val_idx)
    none_train, none_val = validation_split(labels, 0)
    assert none_val.numel() == 0 and torch.equal(none_train, torch.arange(len(labels)))
    with pytest.raises(ValueError, match="validation split of 55 images.*multiple"):
        validation_split(labels, 55)
    with pytest.raises(ValueError, match="val_size must be an int >= 0"):
        validation_split(labels, -10)
    assert default_val_size(50_000, 10) == 5_000 and default_val_size(2000, 10) == 200
    assert default_val_size(155, 10) == 10


def test_make_bundle_validation_images_are_in_no_training_pool():
    data = make_bundle("synthetic", num_labels=40, seed=0, train_subset=1000, test_subset=200, val_size=200)
    assert data.val_size == 200 and torch.bincount(data.val_labels).tolist() == [20] * 10
    val_keys = _image_keys(data.val_images)
    assert len(val_keys) == 200                                       # synthetic images are distinct
    # the labelled, unlabelled and "all" pools all index train_images, which holds no validation image
    assert not val_keys & _image_keys(data.train_images)
    assert data.unlabeled_idx.max() < len(data.train_images) and data.labeled_idx.max() < len(data.train_images)
    # the validation split does not depend on the label seed; the labels do
    other_seed = make_bundle("synthetic", num_labels=40, seed=1, train_subset=1000, test_subset=200, val_size=200)
    assert torch.equal(other_seed.val_images, data.val_images)
    assert not torch.equal(other_seed.labeled_idx, data.labeled_idx)
    # val_size=0: no validation split, every image of the subset is a training image
    none = make_bundle("synthetic", num_labels=40, seed=0, train_subset=1000, test_subset=200, val_size=0)
    assert none.val_size == 0 and none.val_images.shape == (0, 3, 32, 32) and len(none.train_images) == 1000
    with pytest.raises(ValueError, match="validation split of 1000 images"):
        make_bundle("synthetic", num_labels=40, train_subset=1000, val_size=1000)
    with pytest.raises(ValueError, match="validation split of 95 images"):
        make_bundle("synthetic", num_labels=40, train_subset=1000, val_size=95)


def test_balanced_subset_deterministic():
    labels = _cifar_like_labels()
    a = balanced_subset(labels, 2000)
    assert torch.equal(a, balanced_subset(labels, 2000))
    assert torch.bincount(labels[a]).tolist() == [200] * 10


@pytest.mark.cifar
@needs_cifar
def test_make_bundle_cifar_smoke():
    data = make_bundle("cifar10", num_labels=250, train_subset=2000, test_subset=500)
    assert data.train_images.shape == (1800, 3, 32, 32) and data.test_images.shape == (500, 3, 32, 32)
    assert data.val_images.shape == (200, 3, 32, 32)
    assert data.class_names == CIFAR10_CLASSES and data.num_classes == 10
    assert torch.bincount(data.train_labels[data.labeled_idx]).tolist() == [25] * 10


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

def test_index_stream_covers_each_pass_once_and_reshuffles_per_pass():
    labels = _cifar_like_labels()[:5000]
    _, unl = few_label_split(labels, 40, seed=0)
    per_pass = len(unl) // 112
    batches = list(itertools.islice(index_stream(unl, 112, seed=0, stream=1), 2 * per_pass))
    assert all(b.shape == (112,) and b.dtype == torch.int64 for b in batches)
    first, second = torch.cat(batches[:per_pass]), torch.cat(batches[per_pass:])
    for one_pass in (first, second):
        assert len(set(one_pass.tolist())) == len(one_pass)            # no repeats within a pass
        assert set(one_pass.tolist()) <= set(unl.tolist())
        assert len(unl) - len(one_pass) < 112                          # all but the skipped remainder
    assert not torch.equal(first, second)                              # a fresh order every pass


def test_index_stream_is_a_function_of_seed_stream_and_start():
    pool = torch.arange(100, 400)
    endless = list(itertools.islice(index_stream(pool, 32, seed=5, stream=0), 20))
    again = list(itertools.islice(index_stream(pool, 32, seed=5, stream=0), 20))
    assert all(torch.equal(a, b) for a, b in zip(endless, again))
    # a resumed run starts the stream at its step and sees exactly the batches it would have seen
    resumed = list(itertools.islice(index_stream(pool, 32, seed=5, stream=0, start=13), 7))
    assert all(torch.equal(a, b) for a, b in zip(endless[13:], resumed))
    for other in (index_stream(pool, 32, seed=6, stream=0), index_stream(pool, 32, seed=5, stream=1)):
        assert not torch.equal(next(other), endless[0])


def test_index_stream_samples_with_repetition_when_the_pool_is_smaller_than_a_batch():
    labels = _cifar_like_labels()[:5000]
    lab, _ = few_label_split(labels, 40, seed=0)
    batches = list(itertools.islice(index_stream(lab, 64, seed=0, stream=0), 5))
    assert all(b.shape == (64,) and set(b.tolist()) <= set(lab.tolist()) for b in batches)
    assert not torch.equal(batches[0], batches[1])
    resumed = next(index_stream(lab, 64, seed=0, stream=0, start=3))
    assert torch.equal(resumed, batches[3])


def test_index_stream_errors():
    with pytest.raises(ValueError, match="empty"):
        next(index_stream(torch.arange(0), 4, seed=0, stream=0))
    with pytest.raises(ValueError, match="batch_size"):
        next(index_stream(torch.arange(10), 0, seed=0, stream=0))


def test_class_balanced_batch():
    labels = _cifar_like_labels()[:2000]
    lab, _ = few_label_split(labels, 250, seed=0)                       # 25 per class
    g = torch.Generator().manual_seed(0)
    idx = class_balanced_batch(labels, lab, per_class=8, generator=g)
    assert idx.shape == (80,) and idx.dtype == torch.int64
    assert torch.equal(labels[idx], torch.arange(10).repeat_interleave(8))
    assert torch.isin(idx, lab).all() and len(set(idx.tolist())) == 80   # no repeats when enough images
    same = class_balanced_batch(labels, lab, 8, torch.Generator().manual_seed(0))
    other = class_balanced_batch(labels, lab, 8, torch.Generator().manual_seed(1))
    assert torch.equal(idx, same) and not torch.equal(idx, other)
    # More per class than labelled images: repeated as evenly as possible.
    few, _ = few_label_split(labels, 40, seed=0)                        # 4 per class
    big = class_balanced_batch(labels, few, per_class=10, generator=g)
    assert torch.equal(labels[big], torch.arange(10).repeat_interleave(10))
    counts = torch.bincount(big, minlength=2000)[few]
    assert counts.min() >= 2 and counts.max() <= 3
    with pytest.raises(ValueError, match=r"classes \[9\] have no labelled image"):
        class_balanced_batch(labels, lab[labels[lab] != 9], 2, num_classes=10)


def test_evenly_spaced_picks_the_same_spread_out_items_every_time():
    from ssl_course.data import evenly_spaced

    assert evenly_spaced(10, 3).tolist() == [0, 3, 6]
    assert evenly_spaced(5, 10).tolist() == [0, 1, 2, 3, 4]      # asking for more keeps everything
    assert evenly_spaced(1000, 7).tolist() == evenly_spaced(1000, 7).tolist()
    assert evenly_spaced(1000, 7).diff().unique().tolist() == [142]
    with pytest.raises(ValueError, match="count must be a positive int"):
        evenly_spaced(10, 0)
