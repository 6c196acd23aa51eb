"""Shared fixtures: small synthetic bundles, and the real CIFAR-10 when SSL_COURSE_DATA points at it."""
from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads should sleep, not spin: on a small shared CPU, spinning threads of one
# process steal the cores that another test process (or notebook kernel) needs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Under pytest-xdist each worker gets one core: more intra-op threads than cores makes small
# tensor work many times slower on a loaded machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def cifar_root() -> Path | None:
    root = os.environ.get("SSL_COURSE_DATA")
    if root and (Path(root) / "cifar-10-batches-py").is_dir():
        return Path(root)
    return None


@pytest.fixture(scope="session")
def tiny_bundle():
    """1000 synthetic training images (100 labelled), 500 test images, on the CPU."""
    from ssl_course.data import make_bundle

    return make_bundle("synthetic", num_labels=100, seed=0, device="cpu", train_subset=1000, test_subset=500)


def pytest_collection_modifyitems(config, items):
    if cifar_root() is None:
        skip = pytest.mark.skip(reason="real CIFAR-10 not available (set SSL_COURSE_DATA)")
        for item in items:
            if "cifar" in item.keywords:
                item.add_marker(skip)


@pytest.fixture()
def one_thread():
    """One intra-op thread for a test of many small ops: on a shared 2-core machine two OpenMP threads per
    process spin against each other and against the other workers (measured many times slower; see
    test_methods_learn.py). Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SimulatedCrash(RuntimeError):
    """A power cut in the middle of training (raised by :func:`crash_at`)."""


def crash_at(method, step: int, update: str | None = None) -> None:
    """Make ``fit`` stop with :class:`SimulatedCrash` when ``method`` reaches ``update`` (default: its last
    update) of training step ``step``: the earlier updates of that step have already run, as in a real
    interruption mid-step."""
    original = method.update_step
    target = method.updates[-1] if update is None else update

    def crashing(name, batch, info):
        if info.step == step and name == target:
            raise SimulatedCrash("simulated power cut")
        return original(name, batch, info)

    method.update_step = crashing
