"""The notebook 07 checkers accept the solutions and name each known mistake."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ssl_course.exercises import check_bigbigan_discriminator_loss, check_bigbigan_encoder_generator_loss

_spec = importlib.util.spec_from_file_location(
    "bigbigan_solutions", Path(__file__).parents[1] / "notebooks" / "solutions" / "bigbigan_solutions.py")
solutions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(solutions)


def test_solutions_pass(capsys):
    assert check_bigbigan_discriminator_loss(solutions.discriminator_loss)
    assert check_bigbigan_encoder_generator_loss(solutions.encoder_generator_loss)
    assert capsys.readouterr().out.count("✓ correct on 6 inputs") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, f: sum(f).mean() - sum(r).mean(), "un-hinged"),
    (lambda r, f: torch.relu(1 - r[2]).mean() + torch.relu(1 + f[2]).mean(), "all three scores"),
    (lambda r, f: sum(torch.relu(1 + s) for s in r).mean() + sum(torch.relu(1 - s) for s in f).mean(), "swapped"),
    (lambda r, f: sum(torch.relu(-s) for s in r).mean() + sum(torch.relu(s) for s in f).mean(), "margin of 1"),
])
def test_discriminator_mistakes_are_named(wrong, hint, capsys):
    assert not check_bigbigan_discriminator_loss(wrong)
    assert hint in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, f: sum(torch.relu(1 + s) for s in r).mean() + sum(torch.relu(1 - s) for s in f).mean(), "NOT hinged"),
    (lambda r, f: sum(f).mean() - sum(r).mean(), "reversed"),
    (lambda r, f: r[2].mean() - f[2].mean(), "unary"),
    (lambda r, f: "not a tensor", ""),
])
def test_encoder_generator_mistakes_are_named(wrong, hint, capsys):
    assert not check_bigbigan_encoder_generator_loss(wrong)
    assert hint in capsys.readouterr().out
