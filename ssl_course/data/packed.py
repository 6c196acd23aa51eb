"""CIFAR-10 packed into one small file: every image as a JPEG, all in one ``.npz``.

Why a pack: the official pickles are 178 MB; a machine that receives the repository over a
narrow pipe (a rented GPU for ten minutes, a copy limited to ~60 MB) cannot take them along.
Re-encoded as JPEG quality 75, the 60,000 images take about 53 MB (about 920 bytes per image)
and differ from the originals by about 0.2/255 on average, far below what the augmentations
change. The pack is a *derived* copy: results trained on it are close to, not identical with,
results on the pickles, and :func:`pack_info` says which one a run read.

Layout of the ``.npz`` (plain ``np.savez``: JPEG bytes do not compress further)::

    train_jpeg    uint8 [total bytes]   the JPEG files of the training images, back to back
    train_offsets int64 [N + 1]         image i is train_jpeg[offsets[i]:offsets[i + 1]]
    train_labels  int64 [N]
    test_jpeg, test_offsets, test_labels   the same for the test split
    class_names   str [10]
    quality       int64 []              the JPEG quality used

Write it with ``python benchmarks/gpu_day.py pack`` (or :func:`write_pack`); the loader finds it at
``<data root>/packed/cifar10-jpeg75.npz`` (``$SSL_COURSE_DATA`` or ``<repo>/data``), or wherever
``$SSL_COURSE_DATA`` points when that names the ``.npz`` itself or its folder.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

__all__ = ["PACK_FOLDER", "PACK_NAME", "find_pack", "write_pack", "load_pack", "pack_class_names", "pack_info"]

PACK_FOLDER = "packed"
PACK_NAME = "cifar10-jpeg75.npz"
DEFAULT_QUALITY = 75

# (resolved pack path, train) -> (images, labels), like the pickle loader's cache.
_CACHE: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}


def find_pack(root: str | Path) -> Path | None:
    """The pack file for data root ``root`` (the ``.npz`` itself, its folder, or the data root), or None."""
    root = Path(root).expanduser()
    for candidate in (root, root / PACK_NAME, root / PACK_FOLDER / PACK_NAME):
        if candidate.is_file() and candidate.suffix == ".npz":
            return candidate
    return None


def _encode_split(images: torch.Tensor, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 3, 32, 32] -> (all JPEG bytes back to back, offsets [N + 1])."""
    from PIL import Image

    pixels = images.permute(0, 2, 3, 1).contiguous().numpy()   # [N, 32, 32, 3], PIL's layout
    chunks, offsets = [], [0]
    for image in pixels:
        buffer = io.BytesIO()
        # PIL's default chroma subsampling (4:2:0): measured on 3000 training images of the copy the
        # course was built with, 4:4:4 was larger (964 against 921 bytes) and further from it
        # (1.06/255 against 0.15/255 mean absolute difference).
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        chunks.append(buffer.getvalue())
        offsets.append(offsets[-1] + len(chunks[-1]))
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), np.asarray(offsets, dtype=np.int64)


def write_pack(path: str | Path, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
               class_names: tuple[str, ...], quality: int = DEFAULT_QUALITY) -> Path:
    """Write both splits (uint8 ``[N, 3, 32, 32]`` images, int64 labels) to ``path`` atomically."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in 1..95 (PIL's useful range), got {quality}")
    arrays: dict[str, np.ndarray] = {"class_names": np.asarray(class_names), "quality": np.asarray(quality)}
    for split, (images, labels) in (("train", train), ("test", test)):
        if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (3, 32, 32):
            raise ValueError(f"{split} images must be uint8 [N, 3, 32, 32], got {images.dtype} {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = _encode_split(images, quality)
        arrays[f"{split}_labels"] = labels.numpy().astype(np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)   # a cut-off write never leaves a truncated pack under the real name
    return path


def _decode_split(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    data = blob.tobytes()
    out = np.empty((len(offsets) - 1, 32, 32, 3), dtype=np.uint8)
    for i in range(len(out)):
        out[i] = np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]])).convert("RGB"))
    return out


def load_pack(path: str | Path, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of a pack: uint8 ``[N, 3, 32, 32]`` and int64 ``[N]`` (cached; do not modify in place)."""
    path = Path(path)
    key = (str(path.resolve()), bool(train))
    if key not in _CACHE:
        split = "train" if train else "test"
        try:
            with np.load(path, allow_pickle=False) as pack:
                blob, offsets, labels = pack[f"{split}_jpeg"], pack[f"{split}_offsets"], pack[f"{split}_labels"]
        except (KeyError, ValueError, OSError) as error:
            raise ValueError(f"{path} is not a CIFAR-10 pack ({error!r}); write it again with "
                             "`python benchmarks/gpu_day.py pack`") from error
        if len(offsets) != len(labels) + 1 or offsets[-1] != len(blob):
            raise ValueError(f"{path}: the {split} split is truncated ({len(labels)} labels, {len(offsets)} offsets, "
                             f"{len(blob)} bytes); write it again with `python benchmarks/gpu_day.py pack`")
        pixels = _decode_split(blob, offsets)                               # [N, 32, 32, 3]
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # [N, 3, 32, 32]
        _CACHE[key] = (images, torch.from_numpy(labels.astype(np.int64)))
    return _CACHE[key]


def pack_class_names(path: str | Path) -> tuple[str, ...]:
    with np.load(path, allow_pickle=False) as pack:
        return tuple(str(name) for name in pack["class_names"])


def pack_info(path: str | Path) -> dict[str, object]:
    """What a run should record about the pack it read: file, size and JPEG quality."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as pack:
        quality = int(pack["quality"])
    return {"pack": path.name, "bytes": path.stat().st_size, "jpeg_quality": quality}
