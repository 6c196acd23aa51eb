"""Tests for ssl_course.exercises.semi_supervised: checkers accept the solutions, reject mistakes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ssl_course.exercises import semi_supervised as exercises
from ssl_course.losses import semi_supervised as library

SOLUTIONS_PATH = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / "semi_supervised_solutions.py"


@pytest.fixture(scope="module")
def solutions():
    spec = importlib.util.spec_from_file_location("semi_supervised_solutions", SOLUTIONS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECKERS_AND_SOLUTIONS = [
    ("check_sharpen", "sharpen"),
    ("check_snn", "snn"),
    ("check_me_max", "me_max"),
    ("check_mixup", "mixup"),
    ("check_fixmatch_mask", "fixmatch_mask"),
    ("check_fixmatch_loss", "fixmatch_loss"),
]


@pytest.mark.parametrize("checker_name, solution_name", CHECKERS_AND_SOLUTIONS)
def test_checkers_accept_the_solutions(solutions, capsys, checker_name, solution_name):
    checker = getattr(exercises, checker_name)
    assert checker(getattr(solutions, solution_name)) is True
    assert capsys.readouterr().out.strip() == "✓ correct on 6 inputs"


def test_checkers_accept_the_library_functions(capsys):
    assert exercises.check_sharpen(library.sharpen)
    assert exercises.check_snn(library.snn)
    assert exercises.check_me_max(library.me_max_regularizer)
    assert exercises.check_mixup(library.mixup)
    assert exercises.check_fixmatch_mask(lambda logits, threshold: library.fixmatch_loss(logits, logits, threshold)[1])
    assert exercises.check_fixmatch_loss(library.fixmatch_loss)  # a tuple: its first item is the loss
    assert capsys.readouterr().out.count("✓ correct on 6 inputs") == 6


def test_all_checkers_are_exported():
    assert set(exercises.__all__) == {name for name, _ in CHECKERS_AND_SOLUTIONS}


# ----------------------------------------------------------------------------------------
# Typical mistakes are rejected with the matching hint
# ----------------------------------------------------------------------------------------
def sharpen_power_t(p, T):
    powered = p ** T  # mistake: T instead of 1/T
    return powered / powered.sum(dim=1, keepdim=True)


def sharpen_no_normalisation(p, T):
    return p ** (1 / T)


def sharpen_wrong_axis(p, T):
    powered = p ** (1 / T)
    return powered / powered.sum(dim=0, keepdim=True)


def snn_without_normalising(query, supports, labels, temperature):
    return torch.softmax(query @ supports.T / temperature, dim=1) @ labels


def snn_softmax_over_queries(query, supports, labels, temperature):
    query, supports = F.normalize(query, dim=1), F.normalize(supports, dim=1)
    return torch.softmax(query @ supports.T / temperature, dim=0) @ labels


def snn_times_temperature(query, supports, labels, temperature):
    query, supports = F.normalize(query, dim=1), F.normalize(supports, dim=1)
    return torch.softmax(query @ supports.T * temperature, dim=1) @ labels


def me_max_entropy_sign(probabilities, T):
    mean = library.sharpen(probabilities, T).mean(dim=0)
    return -(mean * mean.log()).sum()


def me_max_not_sharpened(probabilities, T):
    mean = probabilities.mean(dim=0)
    return (mean * mean.log()).sum()


def me_max_mean_of_entropies(probabilities, T):
    sharp = library.sharpen(probabilities, T)
    return (sharp * sharp.log()).sum(dim=1).mean()


def me_max_with_log_k(probabilities, T):
    mean = library.sharpen(probabilities, T).mean(dim=0)
    return (mean * mean.log()).sum() + torch.log(torch.tensor(float(probabilities.shape[1])))


def mixup_without_max(x1, p1, x2, p2, lam):
    return lam * x1 + (1 - lam) * x2, lam * p1 + (1 - lam) * p2


def mixup_inputs_only(x1, p1, x2, p2, lam):
    lam = max(lam, 1 - lam)
    return lam * x1 + (1 - lam) * x2, p1


def mask_on_logits(logits_weak, threshold):
    return (logits_weak.max(dim=1).values >= threshold).float()


def mask_wrong_shape(logits_weak, threshold):
    return (torch.softmax(logits_weak, dim=1) >= threshold).float()  # [N, C] instead of [N]


def fixmatch_mean_over_confident(logits_weak, logits_strong, threshold):
    probabilities = torch.softmax(logits_weak, dim=1)
    max_probability, pseudo = probabilities.max(dim=1)
    mask = (max_probability >= threshold).float().to(logits_strong.dtype)
    per_sample = F.cross_entropy(logits_strong, pseudo, reduction="none")
    return (mask * per_sample).sum() / mask.sum()


def fixmatch_no_mask(logits_weak, logits_strong, threshold):
    return F.cross_entropy(logits_strong, logits_weak.argmax(dim=1))


def fixmatch_weak_logits_in_ce(logits_weak, logits_strong, threshold):
    probabilities = torch.softmax(logits_weak, dim=1)
    max_probability, pseudo = probabilities.max(dim=1)
    mask = (max_probability >= threshold).to(logits_weak.dtype)
    return (mask * F.cross_entropy(logits_weak, pseudo, reduction="none")).mean()


WRONG_VARIANTS = [
    ("check_sharpen", sharpen_power_t, "raise each probability to the power 1/T, not T"),
    ("check_sharpen", sharpen_no_normalisation, "divide by the row sum"),
    ("check_sharpen", sharpen_wrong_axis, "divide by the row sum"),
    ("check_snn", snn_without_normalising, "normalise embeddings first"),
    ("check_snn", snn_softmax_over_queries, "softmax over the supports"),
    ("check_snn", snn_times_temperature, "divide the cosine similarities by the temperature"),
    ("check_me_max", me_max_entropy_sign, "no minus sign"),
    ("check_me_max", me_max_not_sharpened, "sharpen every prediction"),
    ("check_me_max", me_max_mean_of_entropies, "not the mean of per-sample entropies"),
    ("check_me_max", me_max_with_log_k, "no log K"),
    ("check_mixup", mixup_without_max, "λ' = max(λ, 1−λ) so the mixed sample stays closer to x1"),
    ("check_mixup", mixup_inputs_only, "mix the labels with the same λ'"),
    ("check_fixmatch_mask", mask_on_logits, "apply softmax"),
    ("check_fixmatch_mask", mask_wrong_shape, "one 0/1 value per sample"),
    ("check_fixmatch_loss", fixmatch_mean_over_confident,
     "average over all unlabelled samples, not just the confident ones"),
    ("check_fixmatch_loss", fixmatch_no_mask, "average over all unlabelled samples"),
    ("check_fixmatch_loss", fixmatch_weak_logits_in_ce, "uses the STRONG logits"),
]


@pytest.mark.parametrize("checker_name, wrong, hint", WRONG_VARIANTS, ids=[w[1].__name__ for w in WRONG_VARIANTS])
def test_checkers_reject_wrong_variants(capsys, checker_name, wrong, hint):
    assert getattr(exercises, checker_name)(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗")
    assert "yours" in out and "expected" in out or "shape" in out  # both values (or the shapes) are shown
    assert "input " in out and " of 6" in out  # which input failed
    assert hint in out


def test_report_shows_the_failing_input_and_both_values(capsys):
    exercises.check_sharpen(sharpen_power_t)
    out = capsys.readouterr().out
    assert "input 1 of 6" in out
    assert "p[0] = [" in out  # the input row where the outputs differ
    assert "yours:    [" in out and "expected: [" in out


# ----------------------------------------------------------------------------------------
# Learner errors are caught and reported
# ----------------------------------------------------------------------------------------
def test_checker_reports_exceptions(capsys):
    def broken(p, T):
        return p.not_a_method()

    assert exercises.check_sharpen(broken) is False
    out = capsys.readouterr().out
    assert "raised AttributeError" in out and "not_a_method" in out
    assert "hint:" in out


def test_checker_reports_not_implemented(capsys):
    def todo(logits_weak, logits_strong, threshold):
        raise NotImplementedError

    assert exercises.check_fixmatch_loss(todo) is False
    assert "NotImplementedError" in capsys.readouterr().out


def test_checker_reports_wrong_return_type(capsys):
    assert exercises.check_mixup(lambda x1, p1, x2, p2, lam: x1) is False
    assert "should return a tuple of 2 tensors" in capsys.readouterr().out
    assert exercises.check_snn(lambda q, s, y, t: "probabilities") is False
    assert "expected a torch.Tensor" in capsys.readouterr().out


def test_checker_accepts_bool_masks_and_python_floats(capsys):
    assert exercises.check_fixmatch_mask(
        lambda logits, threshold: torch.softmax(logits, dim=1).max(dim=1).values >= threshold
    )
    assert exercises.check_me_max(lambda p, T: float(library.me_max_regularizer(p, T)))
    assert capsys.readouterr().out.count("✓") == 2


def test_checker_inputs_are_protected_from_in_place_edits(capsys):
    def in_place(p, T):
        p.pow_(1 / T)
        return p / p.sum(dim=1, keepdim=True)

    assert exercises.check_sharpen(in_place)
    assert exercises.check_sharpen(library.sharpen)
