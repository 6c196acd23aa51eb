"""The set-up cell that notebooks 05 and 06 share: mode, device, seed, data set, labels and backbone.

One call instead of the same thirty lines in every notebook::

    from ssl_course.notebook import notebook_setup
    SMOKE, DEVICE, DATA, NUM_LABELS, SUBSET, BACKBONE, data = notebook_setup(notebook="05")

The choices depend on the smoke switch and the device only, never on anything else of the machine,
so that the run names (which contain ``DATA``, ``NUM_LABELS`` and ``BACKBONE``) are the same in
learn, present and record mode on a CPU (see :mod:`ssl_course.reference`). Presenting, the backbone
is the one of the notebook's references (``small`` when a GPU recording of it is here,
:func:`ssl_course.reference.notebook_backbone`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ssl_course import config

__all__ = ["NotebookSetup", "notebook_setup", "CPU_SUBSET", "SMOKE_SUBSET"]

#: Smoke mode: tiny data, so that the tests run every cell in seconds.
SMOKE_SUBSET = dict(train_subset=2000, test_subset=500)
#: CIFAR-10 on a CPU: a 10 000-image training subset keeps training epochs and evaluation to minutes.
CPU_SUBSET = dict(train_subset=10_000, test_subset=2000)


class NotebookSetup(NamedTuple):
    """What a notebook's first cells define, in the order they are unpacked."""

    smoke: bool                  # SSL_COURSE_SMOKE=1: the same cells on tiny data for a few steps
    device: torch.device
    data_name: str               # "cifar10" when it is on this machine, else "synthetic"
    num_labels: int              # labelled training images (the rest are used without labels)
    subset: dict[str, int]       # make_bundle's train_subset / test_subset (empty: every image)
    backbone: str                # "tiny" on a CPU and in smoke mode, else "small" (~16x the compute)
    data: object                 # the ssl_course.data.DataBundle


def notebook_setup(num_labels: int = 250, smoke_labels: int = 100, seed: int = 0,
                   notebook: str | None = None) -> NotebookSetup:
    """Seed everything, pick the device, load the data bundle and print what was chosen.

    ``notebook`` (its two-digit number) lets present mode choose the backbone of the notebook's
    references (:func:`ssl_course.reference.notebook_backbone`); without it: ``tiny`` on a CPU.
    """
    from ssl_course.data import cifar10_available, make_bundle
    from ssl_course.reference import notebook_backbone

    smoke = config.smoke()
    device = config.pick_device()
    config.seed_everything(seed)
    if smoke and device.type == "cpu":
        # Smoke mode is for quick checks: one thread keeps small convolutions from waiting on each
        # other. Outside smoke mode PyTorch uses its default number of threads.
        torch.set_num_threads(1)
    data_name = "cifar10" if cifar10_available() else "synthetic"
    labels = smoke_labels if smoke else num_labels
    if smoke:
        subset = dict(SMOKE_SUBSET)
    elif device.type == "cpu" and data_name == "cifar10":
        subset = dict(CPU_SUBSET)
    else:
        subset = {}
    backbone = (notebook_backbone(notebook, smoke, device) if notebook is not None
                else "tiny" if smoke or device.type == "cpu" else "small")
    data = make_bundle(data_name, num_labels=labels, seed=seed, device=device, **subset)
    print(f"device: {device} · smoke mode: {smoke} · mode: {config.mode()} · backbone: {backbone}")
    print(data)
    return NotebookSetup(smoke, device, data_name, labels, subset, backbone, data)
