"""The colorization-loss checker accepts the solution and names each known mistake."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ssl_course.exercises import check_colorization_loss
from ssl_course.exercises.pretext import _variants

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / "pretext_solutions.py"


def _solutions():
    spec = importlib.util.spec_from_file_location("pretext_solutions", SOLUTIONS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_solution_passes(capsys):
    assert check_colorization_loss(_solutions().my_colorization_loss)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("index", range(len(_variants())))
def test_each_mistake_is_named(index, capsys):
    variant = _variants()[index]
    assert not check_colorization_loss(variant.compute)
    assert variant.hint in capsys.readouterr().out
