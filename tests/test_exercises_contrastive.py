"""The contrastive exercise checkers accept the reference solutions and reject the usual mistakes
with the right hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ssl_course.exercises.contrastive import (
    check_info_nce,
    check_nnclr_lookup,
    check_nt_xent,
    check_rotate_batch,
    check_supcon,
)

SOLUTIONS_PATH = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "contrastive_solutions.py"


@pytest.fixture(autouse=True)
def _single_thread():
    """These tensors are tiny: extra intra-op threads only contend with other jobs for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def solutions():
    spec = importlib.util.spec_from_file_location("contrastive_solutions", SOLUTIONS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_checker(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# The reference solutions pass
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "checker,name",
    [
        (check_info_nce, "info_nce"),
        (check_nt_xent, "nt_xent"),
        (check_supcon, "supcon"),
        (check_nnclr_lookup, "nearest_neighbours"),
        (check_rotate_batch, "rotate_batch"),
    ],
)
def test_checkers_accept_the_solutions(checker, name, solutions, capsys):
    ok, out = run_checker(checker, getattr(solutions, name), capsys)
    assert ok is True
    assert out.strip() == "✓ correct on 6 inputs"


def test_solutions_do_not_use_the_library():
    text = SOLUTIONS_PATH.read_text()
    assert "ssl_course.losses" not in text.replace("from ssl_course.exercises", "")


# --------------------------------------------------------------------------------------------
# Wrong NT-Xent variants
# --------------------------------------------------------------------------------------------
def _nt_xent_logits(z1, z2, tau, normalise=True, mask=True):
    if normalise:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    z = torch.cat([z1, z2])
    logits = z @ z.T / tau
    if mask:
        logits = logits - 1e9 * torch.eye(len(z), dtype=z.dtype)
    n = len(z1)
    return logits, torch.cat([torch.arange(n, 2 * n), torch.arange(n)])


def nt_xent_no_mask(z1, z2, tau):
    return F.cross_entropy(*_nt_xent_logits(z1, z2, tau, mask=False))


def nt_xent_summed_directions(z1, z2, tau):
    logits, targets = _nt_xent_logits(z1, z2, tau)
    n = len(z1)
    return F.cross_entropy(logits[:n], targets[:n]) + F.cross_entropy(logits[n:], targets[n:])


def nt_xent_no_normalisation(z1, z2, tau):
    return F.cross_entropy(*_nt_xent_logits(z1, z2, tau, normalise=False))


def nt_xent_one_direction(z1, z2, tau):
    logits, targets = _nt_xent_logits(z1, z2, tau)
    return F.cross_entropy(logits[: len(z1)], targets[: len(z1)])


def nt_xent_item(z1, z2, tau):
    return F.cross_entropy(*_nt_xent_logits(z1, z2, tau)).item()


def nt_xent_float(z1, z2, tau):
    return F.cross_entropy(*_nt_xent_logits(z1.float(), z2.float(), tau))


def nt_xent_raises(z1, z2, tau):
    return z1 @ z2  # [N, D] @ [N, D]: shape error


@pytest.mark.parametrize(
    "fn,hint",
    [
        (nt_xent_no_mask, "mask the self-similarity on the diagonal"),
        (nt_xent_summed_directions, "you summed the two directions: average over all 2N anchors"),
        (nt_xent_no_normalisation, "L2-normalise z1 and z2"),
        (nt_xent_one_direction, "use both views as anchors"),
        (nt_xent_item, "not a tensor"),
        (nt_xent_float, "the value is right but the dtype is not"),
        (nt_xent_raises, "your function raised RuntimeError"),
    ],
)
def test_check_nt_xent_rejects_wrong_variants_with_a_hint(fn, hint, capsys):
    ok, out = run_checker(check_nt_xent, fn, capsys)
    assert ok is False
    assert hint in out
    assert "✓" not in out


def test_failure_report_names_the_input_and_both_values(capsys):
    ok, out = run_checker(check_nt_xent, nt_xent_no_mask, capsys)
    assert not ok
    assert "input 1 of 6" in out
    assert "z1 [4, 8], z2 [4, 8], temperature=0.5, float64" in out
    assert "your value:" in out and "expected value:" in out


# --------------------------------------------------------------------------------------------
# Wrong InfoNCE variants
# --------------------------------------------------------------------------------------------
def _moco_logits(q, k, queue, tau, normalise=True):
    if normalise:
        q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    return torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / tau


def info_nce_no_normalisation(q, k, queue, tau):
    return F.cross_entropy(_moco_logits(q, k, queue, tau, normalise=False), torch.zeros(len(q), dtype=torch.long))


def info_nce_arange_targets(q, k, queue, tau):
    return F.cross_entropy(_moco_logits(q, k, queue, tau), torch.arange(len(q)))


def info_nce_no_temperature(q, k, queue, tau):
    return F.cross_entropy(_moco_logits(q, k, queue, 1.0), torch.zeros(len(q), dtype=torch.long))


@pytest.mark.parametrize(
    "fn,hint",
    [
        (info_nce_no_normalisation, "L2-normalise query, positive_key and negative_keys"),
        (info_nce_arange_targets, "every target is 0"),
        (info_nce_no_temperature, "divide the logits by the temperature"),
    ],
)
def test_check_info_nce_rejects_wrong_variants_with_a_hint(fn, hint, capsys):
    ok, out = run_checker(check_info_nce, fn, capsys)
    assert ok is False and hint in out


# --------------------------------------------------------------------------------------------
# Wrong SupCon variants (built from the solution with one change each)
# --------------------------------------------------------------------------------------------
def _supcon_variant(features, labels, temperature, base_temperature, *, scale=True, skip_empty=False,
                    mask_self=True, use_labels=True, guard=True):
    n, v, d = features.shape
    if labels is None or not use_labels:
        labels = torch.arange(n)
    z = features.transpose(0, 1).reshape(v * n, d)
    cls = labels.repeat(v)
    eye = torch.eye(v * n, dtype=torch.bool)
    logits = z @ z.T / temperature
    if mask_self:
        logits = logits.masked_fill(eye, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1)
    positives = cls[:, None] == cls[None, :]
    if mask_self:
        positives = positives & ~eye
    count = positives.sum(1)
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    mean_pos = summed / (count.clamp(min=1) if guard else count)
    loss = -mean_pos * (temperature / base_temperature if scale else 1.0)
    return loss[count > 0].mean() if skip_empty else loss.mean()


@pytest.mark.parametrize(
    "options,hint",
    [
        (dict(scale=False), "multiply the loss by temperature / base_temperature"),
        (dict(skip_empty=True), "anchors without positives contribute 0 but still count"),
        (dict(mask_self=False), "mask the diagonal"),
        (dict(use_labels=False), "use the labels"),
        (dict(guard=False), "returned NaN"),
    ],
)
def test_check_supcon_rejects_wrong_variants_with_a_hint(options, hint, capsys):
    ok, out = run_checker(check_supcon, lambda f, y, t, b: _supcon_variant(f, y, t, b, **options), capsys)
    assert ok is False and hint in out


def test_check_supcon_explains_l_in(capsys):
    def supcon_l_in(features, labels, temperature, base_temperature):
        n, v, d = features.shape
        labels = torch.arange(n) if labels is None else labels
        z = features.transpose(0, 1).reshape(v * n, d)
        cls = labels.repeat(v)
        eye = torch.eye(v * n, dtype=torch.bool)
        prob = torch.softmax((z @ z.T / temperature).masked_fill(eye, float("-inf")), dim=1)
        positives = (cls[:, None] == cls[None, :]) & ~eye
        count = positives.sum(1)
        mean_prob = (prob * positives).sum(1) / count.clamp(min=1)
        loss = torch.where(count > 0, -torch.log(mean_prob.clamp_min(1e-300)), torch.zeros_like(mean_prob))
        return (temperature / base_temperature * loss).mean()

    ok, out = run_checker(check_supcon, supcon_l_in, capsys)
    assert ok is False and "L_in" in out


# --------------------------------------------------------------------------------------------
# Wrong nearest-neighbour look-ups
# --------------------------------------------------------------------------------------------
def nn_raw_row(z, queue):
    return queue[(F.normalize(z, dim=1) @ F.normalize(queue, dim=1).T).argmax(1)]


def nn_argmin(z, queue):
    queue = F.normalize(queue, dim=1)
    return queue[(F.normalize(z, dim=1) @ queue.T).argmin(1)]


def nn_indices(z, queue):
    return (F.normalize(z, dim=1) @ F.normalize(queue, dim=1).T).argmax(1)


def nn_dot_product(z, queue):
    return F.normalize(queue, dim=1)[(z @ queue.T).argmax(1)]


@pytest.mark.parametrize(
    "fn,hint",
    [
        (nn_raw_row, "return the L2-normalised queue row"),
        (nn_argmin, "argmax, not argmin"),
        (nn_indices, "return the queue rows themselves"),
        (nn_dot_product, "use cosine similarity"),
    ],
)
def test_check_nnclr_lookup_rejects_wrong_variants_with_a_hint(fn, hint, capsys):
    ok, out = run_checker(check_nnclr_lookup, fn, capsys)
    assert ok is False and hint in out


# --------------------------------------------------------------------------------------------
# Wrong rotation batches
# --------------------------------------------------------------------------------------------
def rotate_interleaved(x):
    rotated = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=1).flatten(0, 1)
    return rotated, torch.arange(4).repeat(len(x))


def rotate_clockwise(x):
    return torch.cat([torch.rot90(x, -k, dims=(2, 3)) for k in range(4)]), torch.arange(4).repeat_interleave(len(x))


def rotate_float_labels(x):
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)]), torch.arange(4.0).repeat_interleave(len(x))


def rotate_labels_out_of_order(x):
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)]), torch.arange(4).repeat(len(x))


def rotate_three(x):
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(3)]), torch.arange(3).repeat_interleave(len(x))


@pytest.mark.parametrize(
    "fn,hint",
    [
        (rotate_interleaved, "the order is rotation-major"),
        (rotate_clockwise, "you rotated clockwise"),
        (rotate_float_labels, "int64"),
        (rotate_labels_out_of_order, "label k for the k-th block"),
        (rotate_three, "4 rotations of each of the B images"),
    ],
)
def test_check_rotate_batch_rejects_wrong_variants_with_a_hint(fn, hint, capsys):
    ok, out = run_checker(check_rotate_batch, fn, capsys)
    assert ok is False and hint in out


def test_checkers_do_not_let_the_learner_modify_their_inputs(solutions, capsys):
    def mutating(z1, z2, tau):
        value = solutions.nt_xent(z1, z2, tau)
        z1.zero_()  # must not corrupt the checker's reference computation
        return value

    ok, out = run_checker(check_nt_xent, mutating, capsys)
    assert ok is True, out


def test_failing_input_can_be_rerun(capsys):
    from ssl_course.exercises.contrastive import last_failed_input

    ok, out = run_checker(check_nt_xent, nt_xent_raises, capsys)
    assert not ok and "last_failed_input" in out and "at line" in out
    z1, z2, tau = last_failed_input()
    assert z1.shape == (4, 8) and z2.shape == (4, 8) and tau == 0.5
