"""The notebook results format: one folder per training run, readable without the checkpoint.

A run folder written by :func:`ssl_course.experiment.run_experiment` holds ``metrics.json`` and
``history.json``; :func:`save_embedding_sample` adds ``embedding.npz``, the features of a fixed
sample of test images for a t-SNE. That is all a notebook needs to show a reference result (for
example one trained on a GPU by ``benchmarks/gpu_day.py``) next to its own::

    from ssl_course.results import load_run
    reference = load_run("reference/runs/00_supervised_cifar10_250")
    reference["metrics"]["test_accuracy"], reference["history"]["loss"], reference["embedding"]["features"]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["METRICS_FILE", "HISTORY_FILE", "EMBEDDING_FILE", "EMBEDDING_IMAGES", "embedding_sample_index",
           "save_embedding_sample", "load_run", "is_finished_run", "load_trained", "test_embedding"]

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
EMBEDDING_FILE = "embedding.npz"
#: Test images in an embedding sample: enough for a readable t-SNE, small enough to ship (~0.5 MB).
EMBEDDING_IMAGES = 500


def embedding_sample_index(test_size: int, count: int = EMBEDDING_IMAGES) -> torch.Tensor:
    """Every ``test_size // count``-th test image: the same images for every method and run."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    every = max(1, test_size // count)
    return torch.arange(0, test_size, every)[:count]


def save_embedding_sample(run_dir: str | Path, method, data, count: int = EMBEDDING_IMAGES) -> Path:
    """Write the method's features of a fixed test sample to ``run_dir/embedding.npz``.

    ``features`` float16 ``[count, D]`` (half precision halves the file; a t-SNE does not notice),
    ``labels`` int64 ``[count]``, ``test_index`` int64 ``[count]`` (positions in the test split).
    """
    from ssl_course.evaluate import extract_features

    index = embedding_sample_index(data.test_images.shape[0], count)
    was_training = method.training
    method.eval()
    try:
        features = extract_features(method.embed, data.test_images[index.to(data.device)])   # [count, D]
    finally:
        method.train(was_training)
    path = Path(run_dir) / EMBEDDING_FILE
    np.savez(path, features=features.float().cpu().numpy().astype(np.float16),
             labels=data.test_labels[index.to(data.device)].cpu().numpy().astype(np.int64),
             test_index=index.numpy().astype(np.int64))
    return path


def is_finished_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds the metrics of a finished run."""
    return (Path(run_dir) / METRICS_FILE).is_file()


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """``{"metrics": dict, "history": dict or None, "embedding": {"features", "labels", "test_index"} or None}``.

    Raises ``FileNotFoundError`` when the folder holds no ``metrics.json`` (no finished run there).
    """
    run_dir = Path(run_dir)
    if not is_finished_run(run_dir):
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}: not a finished run. Train it (run_experiment, "
                                "run_methods, the CLI) or unpack the reference results there.")
    history_path, embedding_path = run_dir / HISTORY_FILE, run_dir / EMBEDDING_FILE
    embedding = None
    if embedding_path.is_file():
        with np.load(embedding_path, allow_pickle=False) as saved:
            embedding = {name: saved[name] for name in saved.files}
    return {"metrics": json.loads((run_dir / METRICS_FILE).read_text()),
            "history": json.loads(history_path.read_text()) if history_path.is_file() else None,
            "embedding": embedding}


def load_trained(method: torch.nn.Module, run_dir: str | Path, device: str | torch.device | None = None):
    """Load the trained weights of the run in ``run_dir`` into ``method`` and return it, in eval mode.

    ``run_dir`` is a learner's run (its ``checkpoint.pt``) or, in present mode, a reference run
    (:mod:`ssl_course.reference`, its ``weights.pt``), as :func:`ssl_course.experiment.run_methods`
    returns them. The method must be built with the run's settings (method, backbone, hyper-parameters).
    """
    from ssl_course import reference
    from ssl_course.train import CHECKPOINT_NAME, load_checkpoint

    run_dir = Path(run_dir)
    if device is not None:
        method.to(device)
    target = next(iter(method.state_dict().values())).device
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.is_file():
        method.load_state_dict(load_checkpoint(checkpoint, map_location=target)["method"])
    elif (run_dir / reference.WEIGHTS_FILE).is_file() or (run_dir / reference.REFERENCE_FILE).is_file():
        reference.load_weights(method, run_dir)
    else:
        raise FileNotFoundError(f"no trained weights in {run_dir}: expected {CHECKPOINT_NAME} (a run you trained) "
                                f"or {reference.WEIGHTS_FILE} (a reference run recorded with weights)")
    setattr(method, reference.RUN_NAME_ATTRIBUTE, run_dir.name)
    return method.eval()


def test_embedding(run_dir: str | Path, data, method=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, D]`` features of test images and their labels, for a t-SNE of a run.

    In present mode (:mod:`ssl_course.reference`): the fixed sample of test images stored with the
    run's reference (``embedding.npz``), so no network needs to ship. Otherwise the features of every
    test image from ``method``: a trained method, or a function that returns one (called only then).
    """
    from ssl_course import reference
    from ssl_course.evaluate import extract_features

    if reference.presenting():
        sample = reference.load_reference(run_dir)["embedding"]
        if sample is None:
            raise FileNotFoundError(f"the reference run {Path(run_dir).name!r} has no {EMBEDDING_FILE}")
        return torch.from_numpy(sample["features"]).float(), torch.from_numpy(sample["labels"])
    if method is None:
        raise ValueError("give the trained method (or a function returning it) to embed the test images")
    trained = method if isinstance(method, torch.nn.Module) else method()
    trained.eval()
    return extract_features(trained.embed, data.test_images), data.test_labels
