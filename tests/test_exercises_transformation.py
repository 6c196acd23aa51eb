"""Checkers of the AET / En-AET exercises accept the solutions and name the usual mistakes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ssl_course.exercises import transformation as exercises

SOLUTIONS_PATH = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / "aet_enaet_solutions.py"


@pytest.fixture(scope="module")
def solutions():
    spec = importlib.util.spec_from_file_location("aet_enaet_solutions", SOLUTIONS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("checker, solution", [("check_aet_loss", "aet_loss"),
                                               ("check_transformation_consistency", "transformation_consistency")])
def test_checkers_accept_the_solutions(solutions, capsys, checker, solution):
    assert getattr(exercises, checker)(getattr(solutions, solution)) is True
    assert capsys.readouterr().out.strip() == "✓ correct on 6 inputs"


@pytest.mark.parametrize("checker, mistakes", [("check_aet_loss", exercises.AET_MISTAKES),
                                               ("check_transformation_consistency", exercises.KL_MISTAKES)])
def test_checkers_name_each_usual_mistake(capsys, checker, mistakes):
    for message, wrong in mistakes:
        assert getattr(exercises, checker)(wrong) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and f"the mistake: {message}." in out, out


def test_an_unfinished_exercise_says_so(capsys):
    def unfinished(predicted, true):
        raise NotImplementedError
    assert exercises.check_aet_loss(unfinished) is False
    assert "NotImplementedError" in capsys.readouterr().out
