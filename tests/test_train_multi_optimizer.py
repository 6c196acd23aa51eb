"""The engine's multi-optimiser contract, on a two-player toy (a 1-D GAN, tests/toy_gan.py): it
learns, each update steps only its own optimiser with no gradient leaking across updates, the lr
schedule scales to each optimiser's peak, a resumed run equals an uninterrupted one, and the
loss scaler and the compiler fallback work with several optimisers."""
from __future__ import annotations

import pytest
import torch
from conftest import SimulatedCrash, crash_at
from toy_gan import TARGET_MEAN, TARGET_STD, ToyGAN

from ssl_course import train
from ssl_course.methods.base import OptimizerSpec
from ssl_course.train import CHECKPOINT_VERSION, TrainConfig, fit, load_checkpoint, save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gan(**hparams) -> ToyGAN:
    torch.manual_seed(0)
    return ToyGAN(**hparams)


def _config(**overrides) -> TrainConfig:
    values = dict(max_steps=6, seed=3, progress=False, monitor_every=0, log_every=2)
    values.update(overrides)
    return TrainConfig(**values)


def _assert_same_state(expected: ToyGAN, actual: ToyGAN) -> None:
    for (name, value), other in zip(expected.state_dict().items(), actual.state_dict().values()):
        assert torch.equal(value, other), f"{name} differs"


@pytest.mark.slow
def test_the_toy_gan_learns_the_target_distribution(tiny_bundle):
    gan = _gan()
    mean, std = gan.sample_statistics()
    assert abs(mean - TARGET_MEAN) > 1.5 and abs(std - TARGET_STD) > 0.4        # N(0, 1) at the start
    history = fit(gan, tiny_bundle, _config(max_steps=300, log_every=25))
    mean, std = gan.sample_statistics()
    # measured: mean 2.01, std 0.41 (seeds 1, 2 of the toy: 1.99/0.53, 2.01/0.48)
    assert abs(mean - TARGET_MEAN) < 0.15 and abs(std - TARGET_STD) < 0.2, (mean, std)
    assert set(history.logs) == {"discriminator_loss", "generator_loss"}
    # the history's loss is the sum of the updates' losses
    for total, d_loss, g_loss in zip(history.loss, history.logs["discriminator_loss"], history.logs["generator_loss"]):
        assert total == pytest.approx(d_loss + g_loss, rel=1e-5)


def test_each_update_sees_no_gradient_and_moves_only_its_own_parameters(tiny_bundle):
    gan = _gan()
    generator, discriminator = list(gan.backbone.parameters()), list(gan.discriminator.parameters())
    seen = []
    original = gan.update_step

    def spying(update, batch, info):
        # no gradient left over from the previous update (nor from the previous step)
        assert all(parameter.grad is None for parameter in gan.parameters()), update
        seen.append((update, [p.detach().clone() for p in generator], [p.detach().clone() for p in discriminator]))
        return original(update, batch, info)

    gan.update_step = spying
    fit(gan, tiny_bundle, _config(max_steps=3, warmup_fraction=0.0))   # no warm-up: step 0 moves too
    assert [update for update, _, _ in seen] == ["discriminator", "generator"] * 3
    for (update, g_before, d_before), (_, g_after, d_after) in zip(seen, seen[1:]):
        moved_generator = any(not torch.equal(a, b) for a, b in zip(g_before, g_after))
        moved_discriminator = any(not torch.equal(a, b) for a, b in zip(d_before, d_after))
        # the discriminator's loss also sends gradients into the generator: they must not move it
        assert (moved_generator, moved_discriminator) == (update == "generator", update == "discriminator"), update


def test_each_optimiser_follows_the_schedule_to_its_own_peak(tiny_bundle, monkeypatch):
    gan = _gan(generator_lr_multiplier=0.25)
    rates = []
    original = train._run_updates

    def recording(run, batch, info):
        rates.append({update: optimizer.param_groups[0]["lr"] for update, optimizer in run.optimizers.items()})
        return original(run, batch, info)

    monkeypatch.setattr(train, "_run_updates", recording)
    history = fit(gan, tiny_bundle, _config(max_steps=10, log_every=1, warmup_fraction=0.2))
    peak = ToyGAN.default_lr * 64 / 256
    for step, rate in enumerate(rates):
        expected = train.lr_at(step / 10, peak, 0.2)
        assert rate["discriminator"] == pytest.approx(expected)
        assert rate["generator"] == pytest.approx(0.25 * expected)
        assert history.lr[step] == pytest.approx(expected)         # the history shows the first update's lr
    assert history.optimizers["generator"] == {"name": "adam", "lr": pytest.approx(0.25 * peak), "weight_decay": 0.0,
                                               "betas": [0.5, 0.999], "decay_biases_and_norms": False}


def test_resume_mid_step_equals_an_uninterrupted_run(tiny_bundle, tmp_path):
    uninterrupted = _gan()
    fit(uninterrupted, tiny_bundle, _config())

    interrupted = _gan()
    crash_at(interrupted, step=4, update="generator")   # after the discriminator already stepped
    with pytest.raises(SimulatedCrash):
        fit(interrupted, tiny_bundle, _config(out_dir=tmp_path, checkpoint_every=3))
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["step"] == 3 and set(saved["optimizers"]) == {"discriminator", "generator"}
    assert all(saved["optimizers"][update]["state"] for update in ("discriminator", "generator"))  # Adam moments
    resumed = _gan()
    history = fit(resumed, tiny_bundle, _config(out_dir=tmp_path, checkpoint_every=3, resume=True))
    assert history.step[-1] == 6
    _assert_same_state(uninterrupted, resumed)


def test_a_checkpoint_of_the_single_optimiser_format_is_refused_clearly(tiny_bundle, tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", {"version": CHECKPOINT_VERSION - 1, "optimizer": {}})
    with pytest.raises(ValueError, match="incompatible version"):
        fit(_gan(), tiny_bundle, _config(out_dir=tmp_path, resume=True))


def test_one_loss_scaler_serves_every_optimiser(tiny_bundle, monkeypatch):
    """Scaling by a power of two and unscaling is exact, so a scaled run equals an unscaled one."""
    plain = _gan()
    fit(plain, tiny_bundle, _config())
    scalers = []

    def cpu_scaler(amp_dtype, device):
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2))
        return scalers[-1]

    monkeypatch.setattr(train, "_grad_scaler", cpu_scaler)
    scaled = _gan()
    fit(scaled, tiny_bundle, _config())
    assert scalers[0].is_enabled() and scalers[0].get_scale() == 2.0**13   # update() ran once per step
    _assert_same_state(plain, scaled)


def _compiler_that_fails(graph_module, example_inputs):
    raise RuntimeError("simulated compiler failure")


def test_compiler_failure_redoes_the_whole_step_eagerly(tiny_bundle):
    eager = _gan()
    fit(eager, tiny_bundle, _config())
    gan = _gan()
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        fit(gan, tiny_bundle, _config(compile=True, compile_backend=_compiler_that_fails))
    _assert_same_state(eager, gan)


@pytest.mark.parametrize("updates, specs, message", [
    (("discriminator", "generator"), ("discriminator",), "one OptimizerSpec per update"),
    (("discriminator", "discriminator"), ("discriminator",), "distinct"),
])
def test_updates_and_specs_must_match(tiny_bundle, updates, specs, message):
    gan = _gan()
    gan.updates = updates
    gan.optimizer_specs = lambda: {name: OptimizerSpec(list(gan.discriminator.parameters())) for name in specs}
    with pytest.raises(ValueError, match=message):
        fit(gan, tiny_bundle, _config())


def test_bad_optimizer_specs_are_rejected():
    with pytest.raises(ValueError, match="unknown optimizer"):
        OptimizerSpec([], optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr_multiplier"):
        OptimizerSpec([], lr_multiplier=0)
