"""Where the data lives, whether we run in smoke mode, which device to use, and seeding.

Every notebook starts with::

    from ssl_course import config
    SMOKE = config.smoke()          # True under SSL_COURSE_SMOKE=1 (the tests set it)
    DEVICE = config.pick_device()   # cuda, then mps, then cpu
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

#: The repository root (the folder holding ``pyproject.toml``) when installed in editable mode.
REPO_ROOT: Path = Path(__file__).resolve().parent.parent

#: Environment variable naming the data root (a folder that holds ``cifar-10-batches-py/``).
DATA_ENV = "SSL_COURSE_DATA"
#: Environment variable that switches every notebook and script into smoke mode.
SMOKE_ENV = "SSL_COURSE_SMOKE"

_DEVICE_ORDER = ("cuda", "mps", "cpu")

#: Environment variable that switches every notebook between learn, present and record mode
#: (:mod:`ssl_course.reference` explains them).
MODE_ENV = "SSL_COURSE_MODE"
MODES = ("learn", "present", "record")
#: Record mode only: the device the recording trains on (``cpu``, the default, or e.g. ``cuda``): an explicit
#: opt-in, because a notebook chooses its backbone, and so its run names, by its device.
RECORD_DEVICE_ENV = "SSL_COURSE_RECORD_DEVICE"


def data_root() -> Path:
    """The data folder: ``$SSL_COURSE_DATA`` if set, else ``<repo>/data``."""
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "data"


def smoke() -> bool:
    """True when ``SSL_COURSE_SMOKE`` is set to 1/true/yes: tiny data, a few steps, same code path.

    Never in present or record mode (``$SSL_COURSE_MODE``): the reference runs are real-data runs.
    """
    if mode() != "learn":
        return False
    return os.environ.get(SMOKE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def mode() -> str:
    """The course mode: ``learn`` (default), ``present`` or ``record``, from ``$SSL_COURSE_MODE``."""
    value = os.environ.get(MODE_ENV, "").strip().lower() or "learn"
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r} is not a mode: choose one of {list(MODES)} "
                         "(or leave it unset to train as a learner)")
    return value


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The best available device: ``prefer`` if given, else cuda, then mps, then cpu.

    In present mode (``$SSL_COURSE_MODE``) the default is the CPU: presenting trains nothing, and a
    notebook must choose the same backbone and run names on every machine. In record mode it is
    :func:`record_device` (the CPU unless ``$SSL_COURSE_RECORD_DEVICE`` names another).

    Raises ``ValueError`` when ``prefer`` names a device this machine does not have, so that a
    notebook asking for ``"cuda"`` on a laptop without one says so instead of failing later.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False; "
                             "pass prefer=None to pick the best available device")
        if device.type == "mps" and not _mps_available():
            raise ValueError("device 'mps' was requested but it is not available on this machine")
        if device.type not in _DEVICE_ORDER:
            raise ValueError(f"unknown device {prefer!r}: expected one of {_DEVICE_ORDER}")
        return device
    if mode() == "present":
        return torch.device("cpu")
    if mode() == "record":
        return record_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def record_device() -> torch.device:
    """Record mode's device: ``$SSL_COURSE_RECORD_DEVICE`` (e.g. ``cuda``) if set, else the CPU.

    Raises ``ValueError`` when it names a device this machine does not have (a GPU recording asked
    for on a machine without one must not quietly record CPU references instead).
    """
    raw = os.environ.get(RECORD_DEVICE_ENV, "").strip().lower()
    if not raw:
        return torch.device("cpu")
    try:
        return pick_device(raw)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{RECORD_DEVICE_ENV}={raw!r}: {error}. Name a device of this machine (cpu, cuda, "
                         "cuda:1, mps) or unset it to record on the CPU") from error


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a run can be repeated."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: Environment variable naming where notebooks write their runs (tests point it at a temp folder).
RUNS_ENV = "SSL_COURSE_RUNS"


def runs_dir() -> Path:
    """Where notebooks keep their training runs: ``$SSL_COURSE_RUNS`` if set, else ``<repo>/runs``.

    In present and record mode, a scratch folder of this process instead: presenting must not leave
    runs that a learner's later training would resume, and recording must not resume a learner's run.
    """
    if mode() != "learn":
        return Path(tempfile.gettempdir()) / f"ssl_course_{mode()}_runs_{os.getpid()}"
    env = os.environ.get(RUNS_ENV, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "runs"
