"""BigBiGAN: networks, the two updates, and a short adversarial game that moves the right way."""
from __future__ import annotations

import pytest
import torch
from conftest import SimulatedCrash, crash_at

from ssl_course.data import make_bundle
from ssl_course.data.augment import normalize
from ssl_course.methods import build_method
from ssl_course.methods.base import Batch, StepInfo
from ssl_course.models.gan import Generator, JointDiscriminator, LatentHead, normalized_to_unit, tanh_to_normalized

SMALL = dict(z_dim=16, generator_width=16, discriminator_width=16, hidden_dim=64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return make_bundle("synthetic", num_labels=100, seed=0, device="cpu", train_subset=1000, test_subset=200)


def _batch(data, step: int, size: int = 32) -> Batch:
    index = torch.randint(0, data.train_images.shape[0], (size,), generator=torch.Generator().manual_seed(step))
    return Batch(None, None, data.train_images[index], index, torch.Generator().manual_seed(1000 + step))


def test_network_shapes_and_image_space_round_trip():
    torch.manual_seed(0)
    z = torch.randn(5, 16)
    images = Generator(16, 8)(z)
    assert images.shape == (5, 3, 32, 32) and images.abs().max() <= 1
    scores = JointDiscriminator(16, 8, 32)(tanh_to_normalized(images), z)
    assert [s.shape for s in scores] == [(5,)] * 3
    mean, std = LatentHead(40, 16, 32)(torch.randn(5, 40))
    assert mean.shape == std.shape == (5, 16) and (std > 0).all()
    torch.testing.assert_close(normalized_to_unit(tanh_to_normalized(images)), (images + 1) / 2)


@pytest.mark.parametrize("hparams, message", [
    ({"z_dim": 0}, "z_dim must be a positive int"),
    ({"generator_width": 2.5}, "generator_width must be a positive int"),
    ({"hidden_dim": True}, "hidden_dim must be a positive int"),
])
def test_bad_hyper_parameters_are_rejected(hparams, message):
    with pytest.raises(ValueError, match=message):
        build_method("bigbigan", "tiny", 10, **hparams)


def test_optimizer_specs_split_the_parameters_between_the_two_players():
    method = build_method("bigbigan", "tiny", 10, **SMALL)
    specs = method.optimizer_specs()
    assert tuple(specs) == method.updates == ("discriminator", "encoder_generator")
    d_ids = {id(p) for p in specs["discriminator"].parameters}
    eg_ids = {id(p) for p in specs["encoder_generator"].parameters}
    assert not d_ids & eg_ids
    assert d_ids | eg_ids == {id(p) for p in method.parameters()}
    assert d_ids == {id(p) for p in method.discriminator.parameters()}
    assert {id(p) for p in method.backbone.parameters()} <= eg_ids       # the encoder learns
    for spec in specs.values():
        assert spec.optimizer == "adam" and tuple(spec.betas) == (0.0, 0.999) and spec.weight_decay == 0.0


def test_discriminator_update_sends_no_gradient_to_encoder_or_generator(data):
    torch.manual_seed(0)
    method = build_method("bigbigan", "tiny", 10, **SMALL)
    info = StepInfo(0, 0, 0.0, 10)
    method.update_step("discriminator", _batch(data, 0), info).loss.backward()
    assert all(p.grad is None for p in method.generator.parameters())
    assert all(p.grad is None for p in method.backbone.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.discriminator.parameters())
    method.zero_grad(set_to_none=True)
    output = method.update_step("encoder_generator", _batch(data, 0), info)
    output.loss.backward()
    assert set(output.logs) == {"encoder_generator"}
    for module in (method.generator, method.backbone, method.latent_head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    with pytest.raises(ValueError, match="updates"):
        method.update_step("main", _batch(data, 0), info)


def _generated_spread_gap(method, real: torch.Tensor) -> float:
    """|per-pixel std of G(z) - per-pixel std of real images|, averaged: a GAN learns it early."""
    method.eval()
    with torch.no_grad():
        fake = method.generate(torch.randn(400, method.z_dim, generator=torch.Generator().manual_seed(7)))
    method.train()
    return (fake.std(0) - real.std(0)).abs().mean().item()


def test_a_short_game_by_hand_moves_both_players(data):
    """Manual Adam optimisers (the engine's job): G's samples take on the data's pixel spread, and
    D does not win outright (its accuracy on the summed score stays away from 1)."""
    torch.manual_seed(0)
    method = build_method("bigbigan", "tiny", 10, **SMALL)
    specs = method.optimizer_specs()
    optimizers = {name: torch.optim.Adam(spec.parameters, lr=2e-4, betas=spec.betas) for name, spec in specs.items()}
    real = normalize(data.train_images)
    gap_before = _generated_spread_gap(method, real)
    accuracies = []
    for step in range(60):
        batch = _batch(data, step)
        for update in method.updates:
            method.zero_grad(set_to_none=True)
            output = method.update_step(update, batch, StepInfo(step, 0, step / 60, 60))
            output.loss.backward()
            optimizers[update].step()
            if update == "discriminator":
                accuracies.append(float(output.logs["d_accuracy"]))
    gap_after = _generated_spread_gap(method, real)
    assert gap_after < 0.6 * gap_before, (gap_before, gap_after)
    assert sum(accuracies[-20:]) / 20 < 0.95, accuracies[-20:]


def test_fit_trains_both_players_and_resumes_exactly(data, tmp_path):
    """The engine runs both updates; a run cut in the middle of step 4 (after D stepped) and
    resumed from its step-3 checkpoint equals an uninterrupted one."""
    from ssl_course.train import TrainConfig, fit

    def config(out_dir=None, resume=False):
        return TrainConfig(max_steps=6, batch_size=32, seed=0, device="cpu", progress=False, monitor_every=0,
                           log_every=2, out_dir=out_dir, checkpoint_every=3, resume=resume)

    def build():
        torch.manual_seed(0)
        return build_method("bigbigan", "tiny", 10, **SMALL)

    whole = build()
    history = fit(whole, data, config())
    for name in ("discriminator", "encoder_generator", "d_accuracy", "real_s_xz", "fake_s_x"):
        assert len(history.logs[name]) == len(history.step), name

    interrupted = build()
    crash_at(interrupted, step=4, update="encoder_generator")
    with pytest.raises(SimulatedCrash):
        fit(interrupted, data, config(tmp_path))
    resumed = build()
    fit(resumed, data, config(tmp_path, resume=True))
    resumed_state = resumed.state_dict()
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed_state[key], value, rtol=0, atol=0, msg=key)
