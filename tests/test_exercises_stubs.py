"""Every exercise checker meets an untouched stub (``raise NotImplementedError``) with a friendly
verdict and returns False: a notebook whose exercises are not done yet still runs top to bottom."""
from __future__ import annotations

import pytest

import ssl_course.exercises as exercises
from ssl_course.exercises._checking import NOT_IMPLEMENTED

CHECKERS = sorted(name for name in exercises.__all__ if name.startswith("check_"))


def _stub(*args, **kwargs):
    raise NotImplementedError


def test_every_checker_is_listed():
    assert len(CHECKERS) >= 20, CHECKERS


@pytest.mark.parametrize("name", CHECKERS)
def test_a_stub_that_raises_gets_a_friendly_verdict(name, capsys):
    passed = getattr(exercises, name)(_stub)
    out = capsys.readouterr().out
    assert passed is False
    assert out.startswith(NOT_IMPLEMENTED), out
    assert "NotImplementedError" in out and "Traceback" not in out
    assert "last_failed_input" not in out   # an untouched stub has no failing input worth rerunning


@pytest.mark.parametrize("name", ["check_nt_xent", "check_sharpen", "check_momentum_update"])
def test_other_errors_are_still_reported_as_errors(name, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the learner's code")

    assert getattr(exercises, name)(broken) is False
    out = capsys.readouterr().out
    assert NOT_IMPLEMENTED not in out
    assert "RuntimeError" in out
