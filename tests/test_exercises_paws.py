"""The PAWS-loss checker accepts the reference solution and names every known mistake."""
import importlib.util
from pathlib import Path

import pytest

from ssl_course.exercises import check_paws_loss
from ssl_course.exercises.paws import _variant_loss, _variants

SOLUTION = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / "paws_solutions.py"


def _solution():
    spec = importlib.util.spec_from_file_location("paws_solutions", SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.paws_loss


def test_reference_solution_passes(capsys):
    assert check_paws_loss(_solution())
    assert "✓" in capsys.readouterr().out


MISTAKES = [dict(same_view=True), dict(sharpen_target=False), dict(sharpen_prediction=True),
            dict(sharpen_target=False, sharpen_prediction=True), dict(me_max="sign"), dict(me_max="single"),
            dict(me_max="unsharpened"), dict(me_max="none"), dict(normalise=False), dict(floor=False)]


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()))
def test_each_mistake_fails_with_its_own_hint(mistake, capsys):
    assert not check_paws_loss(lambda *args: _variant_loss(*args, **mistake))
    output = capsys.readouterr().out
    hints = [variant.hint for variant in _variants()]
    named = [hint for hint in hints if hint in output]
    assert len(named) == 1, output


def test_the_right_variant_is_the_library_loss():
    """With no mistake switched on, the variant function is the reference (so the variants test the right thing)."""
    assert check_paws_loss(lambda *args: _variant_loss(*args))
