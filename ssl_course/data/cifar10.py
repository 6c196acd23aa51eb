"""CIFAR-10 from the standard ``cifar-10-batches-py/`` pickles, as uint8 tensors.

Why read the pickles ourselves instead of using ``torchvision.datasets.CIFAR10``:

* torchvision checks the md5 of every batch file, so it refuses any copy that is not
  byte-identical to the official archive (for example the rebuilt copy used on the course
  machines, see ``data/README.md``). The pickle *format* is all we need.
* Where the pickles are missing, a compact JPEG pack (:mod:`ssl_course.data.packed`, ~53 MB) is
  read instead, so that a machine that receives only the repository can train on CIFAR-10.
* We want one ``uint8 [N, 3, 32, 32]`` tensor for the whole split, not a per-image PIL dataset:
  the course moves the whole split to the GPU once and augments batches there
  (``ssl_course.data.augment``).

The pickles were written by Python 2, so their keys are byte strings; they must be read with
``pickle.load(f, encoding="bytes")`` (or ``"latin1"``). We accept both spellings of the keys.

Loading the 50,000 training images takes about a second; the result is kept in a process-level
cache so that re-running a notebook cell is instant. The cached tensors are shared: treat them
as read-only (every function in this package returns new tensors instead of writing in place).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_course import config
from ssl_course.data.packed import _CACHE as _PACK_CACHE
from ssl_course.data.packed import find_pack, load_pack, pack_class_names

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "BATCH_FOLDER",
    "load_cifar10",
    "class_names",
    "cifar10_available",
    "find_batch_folder",
    "clear_cache",
]

#: Class names in label order (label 0 is "airplane"), as in ``batches.meta``.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
#: The official archive and its md5 (from https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
#: The folder the archive extracts to.
BATCH_FOLDER = "cifar-10-batches-py"

_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)
_META_FILE = "batches.meta"
_IMAGE_BYTES = 3 * 32 * 32

# (resolved batch folder, train) -> (images, labels). Module-level so it survives re-imports
# of the notebook's own code; cleared with clear_cache().
_CACHE: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}


def _split_files(train: bool) -> tuple[str, ...]:
    return _TRAIN_FILES if train else _TEST_FILES


def _resolve_root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else config.data_root()


def find_batch_folder(root: str | Path | None = None, train: bool | None = None) -> Path | None:
    """The folder holding the batch files, or ``None`` when the files are not there.

    ``root`` may be the folder that *contains* ``cifar-10-batches-py/`` or that folder itself
    (default: ``config.data_root()``). ``train=None`` requires both splits and the meta file;
    ``True``/``False`` require only that split's files.
    """
    root = _resolve_root(root)
    needed = _TRAIN_FILES + _TEST_FILES + (_META_FILE,) if train is None else _split_files(train)
    for folder in (root / BATCH_FOLDER, root):
        if all((folder / name).is_file() for name in needed):
            return folder
    return None


def cifar10_available(root: str | Path | None = None) -> bool:
    """True when both splits of CIFAR-10 can be loaded from ``root`` without downloading
    (the pickles, or the compact pack of :mod:`ssl_course.data.packed`)."""
    return find_batch_folder(root) is not None or find_pack(_resolve_root(root)) is not None


def clear_cache() -> None:
    """Forget the cached splits (e.g. after replacing the files on disk)."""
    _CACHE.clear()
    _PACK_CACHE.clear()


def _unpickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR pickle and return it with ``str`` keys.

    ``encoding="bytes"`` is the recipe from the CIFAR page; it turns the Python-2 ``str`` keys
    into ``bytes``. Decoding the keys here lets the rest of the code use one spelling.
    """
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    if not isinstance(raw, dict):
        raise ValueError(f"{path} does not look like a CIFAR-10 batch: expected a pickled dict, "
                         f"got {type(raw).__name__}. Re-extract cifar-10-python.tar.gz into {path.parent.parent}.")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 [n, 3072], int64 [n])."""
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch: expected keys 'data' and 'labels', "
                         f"found {sorted(batch)}. Re-extract cifar-10-python.tar.gz.")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES or len(labels) != len(data):
        raise ValueError(f"{path} has an unexpected layout: expected uint8 data of shape (n, {_IMAGE_BYTES}) "
                         f"and n labels, got {data.dtype} {data.shape} and {len(labels)} labels. "
                         "The file may be truncated; re-extract cifar-10-python.tar.gz.")
    return data, labels


def class_names(root: str | Path | None = None) -> tuple[str, ...]:
    """Class names in label order, read from ``batches.meta`` (``CIFAR10_CLASSES`` if it is missing)."""
    folder = find_batch_folder(root, train=True) or find_batch_folder(root, train=False)
    pack = find_pack(_resolve_root(root)) if folder is None else None
    if pack is not None:
        return pack_class_names(pack)
    meta_path = folder / _META_FILE if folder is not None else None
    if meta_path is None or not meta_path.is_file():
        return CIFAR10_CLASSES
    names = _unpickle(meta_path).get("label_names", CIFAR10_CLASSES)
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _download(root: Path) -> None:
    """Download and extract the official archive into ``root``.

    Kept as its own function (looked up at call time) so tests can replace it to simulate an
    offline machine. torchvision's helper checks the archive md5 after downloading.
    """
    from torchvision.datasets import utils as tv_utils  # imported lazily: only needed to download

    root.mkdir(parents=True, exist_ok=True)
    tv_utils.download_and_extract_archive(CIFAR10_URL, download_root=str(root),
                                          filename="cifar-10-python.tar.gz", md5=CIFAR10_MD5)


def _missing_message(root: Path, train: bool, reason: str) -> str:
    split = "training" if train else "test"
    files = ", ".join(_split_files(train))
    return (f"CIFAR-10 {split} files not found: looked for {files} in {root / BATCH_FOLDER} and in {root}"
            f" ({reason}). To fix: download {CIFAR10_URL} and extract it into {root} "
            f"(so that {root / BATCH_FOLDER}/{_split_files(train)[0]} exists), or set the "
            f"SSL_COURSE_DATA environment variable to a folder that holds {BATCH_FOLDER}/, "
            "or pass root=... . Without the data, use load_dataset('synthetic').")


def load_cifar10(root: str | Path | None = None, train: bool = True,
                 download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one CIFAR-10 split as tensors.

    Args:
        root: folder that contains ``cifar-10-batches-py/``, or that folder itself.
            Default ``config.data_root()`` (``$SSL_COURSE_DATA`` or ``<repo>/data``).
        train: the 50,000 training images (``True``) or the 10,000 test images.
        download: when the files are missing, try to download the official archive into ``root``.

    Returns:
        ``images``: uint8 ``[N, 3, 32, 32]`` (RGB, contiguous, CPU) and ``labels``: int64 ``[N]``
        in ``0..9``, in the official order. The tensors are cached per process; do not modify
        them in place.

    Raises:
        FileNotFoundError: the files are missing and could not be downloaded (e.g. offline);
            the message names the folders searched and how to provide the data.
    """
    root = _resolve_root(root)
    folder = find_batch_folder(root, train)
    pack = find_pack(root) if folder is None else None
    if pack is not None:  # the pickles win when both are there: the pack is a lossy copy
        return load_pack(pack, train)
    if folder is None:
        if not download:
            raise FileNotFoundError(_missing_message(root, train, "download=False"))
        # If the user pointed at the batch folder itself, the archive belongs one level up.
        target = root.parent if root.name == BATCH_FOLDER else root
        try:
            _download(target)
        except Exception as err:  # offline, read-only folder, bad md5, ...: all mean "not available"
            raise FileNotFoundError(_missing_message(root, train, f"download failed: {err!r}")) from err
        folder = find_batch_folder(root, train)
        if folder is None:
            raise FileNotFoundError(_missing_message(root, train, "the download did not produce the files"))

    key = (str(folder.resolve()), bool(train))
    if key not in _CACHE:
        parts = [_read_batch(folder / name) for name in _split_files(train)]
        data = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        # Rows are 1024 red, then 1024 green, then 1024 blue values, each plane row-major,
        # which is exactly CHW: a reshape, no copy.
        images = torch.from_numpy(data.reshape(-1, 3, 32, 32)).contiguous()
        label_tensor = torch.from_numpy(labels).contiguous()
        if label_tensor.numel() and (label_tensor.min() < 0 or label_tensor.max() >= len(CIFAR10_CLASSES)):
            raise ValueError(f"labels in {folder} fall outside 0..9 (min {int(label_tensor.min())}, "
                             f"max {int(label_tensor.max())}); the files are not CIFAR-10.")
        _CACHE[key] = (images, label_tensor)
    return _CACHE[key]
