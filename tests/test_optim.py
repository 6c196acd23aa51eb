"""LARS against lightly's LARS (an oracle: same updates at a constant lr) and against the formula
written as a loop; it trains a toy; bias and norm parameters are excluded; optimiser settings
resolve from spec, config and method defaults; the engine accepts "lars"."""
from __future__ import annotations

import pytest
import torch
from lightly.utils.lars import LARS as LightlyLARS
from torch import nn

from ssl_course.methods import build_method
from ssl_course.methods.base import OptimizerSpec
from ssl_course.models import small_net
from ssl_course.optim import LARS, OptimizerSettings, build_optimizer
from ssl_course.train import TrainConfig, fit, lr_at, optimizer_settings


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()


def _train(model: nn.Module, optimizer, steps: int = 5) -> list[torch.Tensor]:
    inputs = torch.randn(16, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = torch.randint(3, (16,), generator=torch.Generator().manual_seed(2))
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    return [parameter.detach().clone() for parameter in model.parameters()]


def _groups(model: nn.Module, weight_decay: float, **excluded) -> list[dict]:
    return [{"params": [p for p in model.parameters() if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0, **excluded}]


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_matches_lightly_at_a_constant_learning_rate(nesterov):
    # lightly excludes a group from adaptation when its weight decay is 0; ours says so explicitly
    ours = _model()
    theirs = _model()
    expected = _train(theirs, LightlyLARS(_groups(theirs, 1e-2), lr=0.5, momentum=0.9, nesterov=nesterov))
    actual = _train(ours, LARS(_groups(ours, 1e-2, lars_adaptation=False), lr=0.5, momentum=0.9, nesterov=nesterov))
    for one, other in zip(actual, expected):
        torch.testing.assert_close(one, other, rtol=1e-10, atol=1e-12)
    assert not torch.equal(actual[0], _model()[0].weight)                  # it did move


def test_lars_follows_its_formula_written_as_a_loop_with_a_changing_learning_rate():
    model, reference = _model(), _model()
    optimizer = LARS(_groups(model, 1e-3, lars_adaptation=False), lr=1.0, momentum=0.9, trust_coefficient=0.02)
    velocity = [torch.zeros_like(p) for p in reference.parameters()]
    inputs = torch.randn(16, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = torch.randint(3, (16,), generator=torch.Generator().manual_seed(2))
    for step, lr in enumerate([0.1, 0.3, 0.2]):
        for group in optimizer.param_groups:
            group["lr"] = lr
        for net in (model, reference):
            net.zero_grad()
            nn.functional.cross_entropy(net(inputs), targets).backward()
        optimizer.step()
        with torch.no_grad():
            for index, w in enumerate(reference.parameters()):
                adapted = w.ndim > 1
                decay = 1e-3 if adapted else 0.0
                g = w.grad + decay * w
                ratio = 0.02 * w.norm() / (w.grad.norm() + decay * w.norm() + 1e-8) if adapted else 1.0
                velocity[index] = 0.9 * velocity[index] + lr * ratio * g if step else lr * ratio * g
                w -= velocity[index]
    for one, other in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(one, other, rtol=1e-10, atol=1e-12)


def test_lars_trains_a_toy_and_excludes_biases_and_norms():
    model = _model()
    settings = OptimizerSettings("lars", lr=2.0, weight_decay=1e-4, momentum=0.9, nesterov=False)
    optimizer = build_optimizer(model.parameters(), settings)
    assert [group["lars_adaptation"] for group in optimizer.param_groups] == [True, False]
    assert [group["weight_decay"] for group in optimizer.param_groups] == [1e-4, 0.0]
    assert all(p.ndim <= 1 for p in optimizer.param_groups[1]["params"])
    inputs = torch.randn(64, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()        # 3 classes
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_lars_leaves_zero_weights_to_plain_sgd():
    weight = nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    weight.grad = torch.ones(3, 2, dtype=torch.float64)
    LARS([weight], lr=0.1, momentum=0.0, weight_decay=0.1).step()         # trust ratio 1 when ‖w‖ = 0
    torch.testing.assert_close(weight.detach(), torch.full((3, 2), -0.1, dtype=torch.float64))


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-1.0), "lr"), (dict(lr=0.1, momentum=1.0), "momentum"),
    (dict(lr=0.1, weight_decay=-1.0), "weight_decay"), (dict(lr=0.1, momentum=0.0, nesterov=True), "nesterov"),
])
def test_lars_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LARS([nn.Parameter(torch.ones(2, 2))], **kwargs)


def test_settings_come_from_the_spec_then_the_config_then_the_method():
    method = build_method("supervised", small_net(8), 10)
    config = TrainConfig(max_steps=1, weight_decay=1e-3)
    default = optimizer_settings(method, OptimizerSpec([]), config, base_lr=0.1)
    assert default == OptimizerSettings("sgd", 0.1, 1e-3, 0.9, True, (0.9, 0.999), False)   # today's behaviour
    spec = OptimizerSpec([], optimizer="lars", lr_multiplier=2.0, weight_decay=0.0, momentum=0.5, nesterov=False,
                         decay_biases_and_norms=True)
    assert optimizer_settings(method, spec, config, base_lr=0.1) == OptimizerSettings(
        "lars", 0.2, 0.0, 0.5, False, (0.9, 0.999), True)


def test_the_engine_trains_with_lars_and_records_it(tiny_bundle):
    torch.manual_seed(0)
    method = build_method("supervised", small_net(8), 10)
    history = fit(method, tiny_bundle, TrainConfig(max_steps=30, batch_size=32, optimizer="lars", lr=1.0,
                                                   progress=False, monitor_every=0, log_every=10))
    assert history.optimizers == {"main": {"name": "lars", "lr": 1.0, "weight_decay": method.default_weight_decay,
                                           "momentum": 0.9, "nesterov": True, "decay_biases_and_norms": False}}
    assert history.loss[-1] < history.loss[0]


def test_the_schedule_shape_goes_from_start_through_peak_to_final_fraction():
    # PAWS's official shape (suncet configs/paws/cifar10_train.yaml): start 0.8, peak 3.2, final 0.032
    assert lr_at(0.0, 3.2, 0.1, 0.25, 0.01) == pytest.approx(0.8)
    assert lr_at(0.05, 3.2, 0.1, 0.25, 0.01) == pytest.approx(2.0)          # half-way up the warm-up
    assert lr_at(0.1, 3.2, 0.1, 0.25, 0.01) == pytest.approx(3.2)
    assert lr_at(0.55, 3.2, 0.1, 0.25, 0.01) == pytest.approx((3.2 + 0.032) / 2)
    assert lr_at(1.0, 3.2, 0.1, 0.25, 0.01) == pytest.approx(0.032)
    values = [lr_at(p / 100, 3.2, 0.1, 0.25, 0.01) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:])) and min(values) == pytest.approx(0.032)
    assert lr_at(0.3, 1.0, 0.1) == lr_at(0.3, 1.0, 0.1, 0.0, 0.0)         # the defaults are the usual shape


def test_the_schedule_fractions_resolve_from_the_spec_then_the_method():
    method = build_method("supervised", small_net(8), 10)
    config = TrainConfig(max_steps=1)
    assert optimizer_settings(method, OptimizerSpec([]), config, 0.1).final_lr_fraction == 0.0
    spec = OptimizerSpec([], start_lr_fraction=0.25, final_lr_fraction=0.01)
    settings = optimizer_settings(method, spec, config, 0.1)
    assert (settings.start_lr_fraction, settings.final_lr_fraction) == (0.25, 0.01)
    assert settings.record()["final_lr_fraction"] == 0.01
    with pytest.raises(ValueError, match="final_lr_fraction must be in"):
        OptimizerSpec([], final_lr_fraction=1.5)


def test_the_engine_follows_a_methods_schedule_shape(tiny_bundle):
    torch.manual_seed(0)
    method = build_method("supervised", small_net(8), 10)
    method.default_start_lr_fraction, method.default_final_lr_fraction = 0.25, 0.1   # instance override
    history = fit(method, tiny_bundle, TrainConfig(max_steps=20, batch_size=32, lr=0.1, warmup_fraction=0.2,
                                                   progress=False, monitor_every=0, log_every=1))
    assert history.lr[0] == pytest.approx(0.025)          # logged at step 0: the start of the warm-up
    assert min(history.lr) >= 0.01 - 1e-12 and max(history.lr) == pytest.approx(0.1)
    assert history.optimizers["main"]["start_lr_fraction"] == 0.25
