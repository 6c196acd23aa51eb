"""Checkers of notebooks 01/02: they accept the solutions, reject the usual mistakes with the right
hint, survive unfinished stubs, and the binary NCE reference matches a literal loop."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from ssl_course import exercises
from ssl_course.exercises.nce import (
    _cpc_variants,
    _nce_variants,
    check_cpc_info_nce,
    check_nce_loss,
    nce_loss_reference,
)

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "nce_solutions.py"


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: with two on a busy 2-core machine, OpenMP's spin-waiting made these small
    convolutions up to 50x slower (measured: 1.4 s vs 0.03 s for a CPC encoder step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def solutions():
    spec = importlib.util.spec_from_file_location("nce_solutions", SOLUTIONS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkers_are_reexported():
    assert exercises.check_nce_loss is check_nce_loss
    assert exercises.check_cpc_info_nce is check_cpc_info_nce


def test_nce_reference_equals_a_literal_loop():
    generator = torch.Generator().manual_seed(0)
    n, m = 5, 15
    lmd, lnd = (torch.randn(n, generator=generator, dtype=torch.float64) for _ in range(2))
    lmn, lnn = (torch.randn(m, generator=generator, dtype=torch.float64) for _ in range(2))
    nu = m / n
    total = 0.0
    for i in range(n):  # h(u) = p_m / (p_m + nu p_n)
        pm, pn = math.exp(lmd[i]), math.exp(lnd[i])
        total += math.log(pm / (pm + nu * pn))
    for j in range(m):
        pm, pn = math.exp(lmn[j]), math.exp(lnn[j])
        total += math.log(nu * pn / (pm + nu * pn))
    torch.testing.assert_close(nce_loss_reference(lmd, lnd, lmn, lnn), torch.tensor(-total / n, dtype=torch.float64))


def test_solutions_pass_every_checker(solutions, capsys):
    assert check_nce_loss(solutions.nce_loss)
    assert check_cpc_info_nce(solutions.cpc_info_nce)
    assert exercises.check_info_nce(solutions.info_nce)
    assert exercises.check_rotate_batch(solutions.rotate_batch)
    assert capsys.readouterr().out.count("✓ correct on 6 inputs") == 4


@pytest.mark.parametrize("checker, variants", [
    (check_nce_loss, _nce_variants),
    (check_cpc_info_nce, _cpc_variants),
], ids=["nce", "cpc"])
def test_every_known_mistake_is_caught_with_its_own_hint(checker, variants, capsys):
    for variant in variants():
        assert checker(variant.compute) is False
        output = capsys.readouterr().out
        assert "✗" in output and variant.hint in output, (variant.compute.__name__, output)


@pytest.mark.parametrize("checker", [check_nce_loss, check_cpc_info_nce])
def test_unfinished_stubs_are_reported_not_raised(checker, capsys):
    def stub(*args):
        raise NotImplementedError("your code here")

    assert checker(stub) is False
    assert "NotImplementedError" in capsys.readouterr().out
    assert checker(lambda *args: None) is False
    assert "not a tensor" in capsys.readouterr().out


def test_right_value_in_the_wrong_dtype_is_named(capsys):
    def in_float64(*args):
        return nce_loss_reference(*[a.double() for a in args])

    assert check_nce_loss(in_float64) is False
    assert "dtype" in capsys.readouterr().out
