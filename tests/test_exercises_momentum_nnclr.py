"""The momentum-update and NNCLR-loss checkers accept the right answer and name each mistake."""
import torch
import torch.nn.functional as F

from ssl_course.exercises import check_momentum_update, check_nnclr_loss
from ssl_course.exercises.momentum import reference_momentum_update
from ssl_course.losses.contrastive import nearest_neighbours, nnclr


def test_momentum_checker_accepts_the_reference(capsys):
    assert check_momentum_update(reference_momentum_update)
    assert "✓ correct" in capsys.readouterr().out


def _wrong(update):
    def fn(key_encoder, query_encoder, m):
        with torch.no_grad():
            for key, query in zip(key_encoder.parameters(), query_encoder.parameters()):
                update(key, query, m)
    return fn


def test_momentum_checker_names_each_mistake(capsys):
    cases = {
        "swapped": _wrong(lambda k, q, m: k.copy_((1 - m) * k + m * q)),
        "did not change": _wrong(lambda k, q, m: None),
        "query encoder changed": _wrong(lambda k, q, m: q.copy_(m * q + (1 - m) * k)),
    }
    for expected, fn in cases.items():
        assert not check_momentum_update(fn)
        assert expected in capsys.readouterr().out

    def with_buffers(key_encoder, query_encoder, m):
        reference_momentum_update(key_encoder, query_encoder, m)
        with torch.no_grad():
            for key, query in zip(key_encoder.buffers(), query_encoder.buffers()):
                if key.is_floating_point():
                    key.lerp_(query, 1 - m)
    assert not check_momentum_update(with_buffers)
    assert "buffers" in capsys.readouterr().out

    def rebinding(key_encoder, query_encoder, m):
        for key, query in zip(key_encoder.parameters(), query_encoder.parameters()):
            key = m * key + (1 - m) * query  # noqa: F841 - the mistake being tested
    assert not check_momentum_update(rebinding)
    assert "in place" in capsys.readouterr().out


def test_nnclr_checker_accepts_the_library_and_names_mistakes(capsys):
    assert check_nnclr_loss(lambda z1, z2, queue, tau: nnclr(z1, z2, queue, tau))
    capsys.readouterr()

    def one_direction(z1, z2, queue, tau):
        logits = nearest_neighbours(z1, queue) @ F.normalize(z2, dim=1).T / tau
        return F.cross_entropy(logits, torch.arange(z1.shape[0]))
    assert not check_nnclr_loss(one_direction)
    assert "symmetrise" in capsys.readouterr().out

    def simclr_like(z1, z2, queue, tau):
        a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        t = torch.arange(z1.shape[0])
        return 0.5 * (F.cross_entropy(a @ b.T / tau, t) + F.cross_entropy(b @ a.T / tau, t))
    assert not check_nnclr_loss(simclr_like)
    assert "nearest" in capsys.readouterr().out

    def stub(z1, z2, queue, tau):
        raise NotImplementedError("your NNCLR loss here")
    assert not check_nnclr_loss(stub)
    assert "NotImplementedError" in capsys.readouterr().out


def test_the_written_solutions_pass(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "contrastive_solutions.py"
    spec = importlib.util.spec_from_file_location("contrastive_solutions_mn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert check_momentum_update(module.momentum_update)
    assert check_nnclr_loss(module.nnclr_loss)
