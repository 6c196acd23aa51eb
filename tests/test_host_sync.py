"""A GPU training step should not read values back to the host: each read is a synchronisation
that stalls the queue of launched kernels. Checked on the CPU by spying on the Python-level
host reads (``item``, ``tolist``, ``nonzero``, ``bool(t)``, ``int(t)``...) during a training step
taken the way the engine takes it on a GPU (value checks off, GPU-style per-image selection in
the augmentations). Reads inside C++ (e.g. boolean-mask indexing) are not seen by this spy.
"""
from __future__ import annotations

import collections
import traceback

import pytest
import torch

from ssl_course.data import augment
from ssl_course.losses import sharpen, skip_value_checks, value_checks_enabled
from ssl_course.methods import build_method, method_names
from ssl_course.methods.base import Batch, StepInfo

HOST_READS = ("nonzero", "item", "tolist", "__bool__", "__int__", "__float__", "__index__")
#: Methods that still read a few values per step, and why (documented, not hidden). PAWS reads
#: whether every class is in its labelled memory until it is (its warm-up steps here fill it).
KNOWN_READS: dict[str, int] = {}


def _batch(data, step: int) -> Batch:
    # two labelled images of every class, so that memories (PAWS) see every class in warm-up
    labeled = torch.cat([data.labeled_idx[data.train_labels[data.labeled_idx] == c][:2]
                         for c in range(data.num_classes)])
    unlabeled = torch.arange(1, 400, 3)[:64]
    return Batch(labeled_images=data.train_images[labeled], labels=data.train_labels[labeled],
                 unlabeled_images=data.train_images[unlabeled], unlabeled_index=unlabeled,
                 generator=torch.Generator().manual_seed(step), shared_generator=torch.Generator().manual_seed(99),
                 unlabeled_true_labels=data.train_labels[unlabeled])


def _step(method, data, step: int) -> None:
    info = StepInfo(step=step, epoch=0, progress=step / 10, steps_per_epoch=10)
    batch = _batch(data, step)
    for update in method.updates:                  # every update of the step, as the engine runs them
        method.update_step(update, batch, info).loss.backward()
    method.after_optimizer_step(info)


@pytest.mark.parametrize("name", method_names())
def test_a_gpu_style_training_step_reads_nothing_back(name, tiny_bundle, monkeypatch):
    monkeypatch.setattr(augment, "_gather_selected", lambda device: False)
    torch.manual_seed(0)
    method = build_method(name, "tiny", tiny_bundle.num_classes)
    for step in range(2):                      # fill queues and memories first
        _step(method, tiny_bundle, step)
    reads = collections.Counter()
    for attribute in HOST_READS:
        original = getattr(torch.Tensor, attribute)

        def spy(self, *args, _original=original, _name=attribute, **kwargs):
            caller = traceback.extract_stack(limit=3)[-2]
            reads[f"{_name} at {caller.filename.rsplit('/', 1)[-1]}:{caller.lineno}"] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, attribute, spy)
    with skip_value_checks():
        _step(method, tiny_bundle, 5)
    assert sum(reads.values()) == KNOWN_READS.get(name, 0), dict(reads)


def test_value_checks_are_skipped_only_inside_the_block():
    not_probabilities = torch.tensor([[2.0, -1.0]])
    with pytest.raises(ValueError, match="probabilities"):
        sharpen(not_probabilities, 0.5)
    with skip_value_checks():
        assert not value_checks_enabled()
        sharpen(not_probabilities, 0.5)        # no check, no error: garbage in, garbage out
    assert value_checks_enabled()
    with pytest.raises(ValueError, match="probabilities"):
        sharpen(not_probabilities, 0.5)
