"""Reference runs and the learn / present / record modes (ssl_course.reference)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssl_course import config, reference
from ssl_course.data import make_bundle
from ssl_course.evaluate import evaluate_method
from ssl_course.experiment import run_methods
from ssl_course.methods import build_method
from ssl_course.results import load_trained
from ssl_course.train import TrainConfig, fit

#: What the shipped results/ may weigh in all: it travels with every checkout (and with the GPU-day
#: command's 64 MiB working tree, beside the 56 MB data pack).
RESULTS_BUDGET_BYTES = 6_000_000


@pytest.fixture()
def results(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv(reference.RESULTS_ENV, str(folder))
    monkeypatch.setenv(config.RUNS_ENV, str(tmp_path / "runs"))
    return folder


@pytest.fixture(scope="module")
def data():
    return make_bundle("synthetic", num_labels=40, seed=0, train_subset=400, test_subset=100, val_size=50)


def _settings(out_dir, steps=12):
    return TrainConfig(max_steps=steps, batch_size=32, out_dir=out_dir, resume=out_dir is not None, progress=False,
                       monitor_every=0, seed=0)


def _trained(method):
    return {name: value.detach().clone() for name, value in method.state_dict().items()}


def test_mode_reads_the_switch_and_rejects_unknown_values(monkeypatch):
    monkeypatch.delenv(config.MODE_ENV, raising=False)
    assert config.mode() == "learn" and not reference.presenting() and not reference.recording()
    monkeypatch.setenv(config.MODE_ENV, "Present")
    assert reference.presenting() and config.pick_device() == torch.device("cpu")
    assert config.runs_dir() != config.REPO_ROOT / "runs"   # presenting never writes a learner's runs
    monkeypatch.setenv(config.MODE_ENV, "show")
    with pytest.raises(ValueError, match="learn.*present.*record"):
        config.mode()


def test_record_caps_the_budget_and_present_restores_without_training(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "record")
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "0.01")   # 0.6 s: stops long before 5000 steps
    recorded = build_method("supervised", "tiny", data.num_classes)
    out_dir = config.runs_dir() / "00_demo_run"
    history = fit(recorded, data, _settings(out_dir, steps=5000))
    info = json.loads((results / "00_demo_run" / reference.REFERENCE_FILE).read_text())
    assert 0 < info["steps"] < 5000 and info["capped"] and info["budget_asked"]["max_steps"] == 5000
    recorded_metrics = evaluate_method(recorded, data, probe=False)
    weights = _trained(recorded)

    monkeypatch.setenv(config.MODE_ENV, "present")
    shown = build_method("supervised", "tiny", data.num_classes)
    runs_before = sorted(config.runs_dir().glob("**/*")) if config.runs_dir().exists() else []
    restored = fit(shown, data, _settings(config.runs_dir() / "00_demo_run", steps=5000))
    assert restored.step == history.step and restored.loss == history.loss
    for name, value in _trained(shown).items():   # the recorded weights, to half precision
        assert torch.allclose(value.float(), weights[name].float(), rtol=1e-3, atol=1e-3), name
    assert evaluate_method(shown, data, probe=False) == pytest.approx(recorded_metrics)
    after = sorted(config.runs_dir().glob("**/*")) if config.runs_dir().exists() else []
    assert after == runs_before   # nothing written


def test_present_mode_names_a_missing_reference(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "present")
    method = build_method("supervised", "tiny", data.num_classes)
    with pytest.raises(FileNotFoundError, match="no reference run named '09_nowhere'.*unset SSL_COURSE_MODE"):
        fit(method, data, _settings(Path("runs") / "09_nowhere"))


def test_run_methods_present_returns_the_recorded_metrics_and_weights(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "record")
    shared = dict(data="synthetic", labels=40, backbone="tiny", steps=10, batch_size=32, progress=False,
                  train_subset=400, test_subset=100, val_size=50, monitor_every=0)
    recorded, _ = run_methods({"supervised": {}}, "00t", reference_weights=True, **shared)
    run_methods({"rotation": {}}, "00u", **shared)   # without weights
    assert (results / "00u_rotation_synthetic_40_tiny" / "embedding.npz").is_file()

    monkeypatch.setenv(config.MODE_ENV, "present")
    shown, folders = run_methods({"supervised": {}}, "00t", **shared)
    assert shown["supervised"] == recorded["supervised"]
    assert folders["supervised"] == results / "00t_supervised_synthetic_40_tiny"
    assert json.loads((folders["supervised"] / "history.json").read_text())["step"]
    method = load_trained(build_method("supervised", "tiny", data.num_classes), folders["supervised"])
    assert not method.training
    _, folders = run_methods({"rotation": {}}, "00u", **shared)
    with pytest.raises(FileNotFoundError, match="recorded without weights"):
        load_trained(build_method("rotation", "tiny", data.num_classes), folders["rotation"])


def test_bad_record_cap_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "soon")
    with pytest.raises(ValueError, match="positive number of minutes"):
        reference.record_minutes()


def test_shipped_reference_runs_load_and_stay_small():
    folder = config.REPO_ROOT / "results"
    if not folder.is_dir():
        pytest.skip("no results/ folder in this checkout")
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert total <= RESULTS_BUDGET_BYTES, f"results/ weighs {total / 1e6:.1f} MB (budget {RESULTS_BUDGET_BYTES:,} B)"
    runs = [path for path in folder.iterdir() if path.is_dir()]
    assert runs, "results/ holds no reference run"
    for run in runs:
        loaded = reference.load_reference(run.name)
        assert loaded is not None, f"{run} has no {reference.REFERENCE_FILE}"
        if (run / "compare.json").is_file():   # a whole comparison (ssl_course.compare): each run has its history
            assert all((one / "history.json").is_file() for one in (run / "runs").iterdir()), run
        else:
            assert loaded["history"] is not None, run
        assert loaded["info"]["steps"] > 0, run
        assert reference.describe(run.name).startswith("reference run:")


def test_plot_history_draws_the_reference_beside_a_learners_run(results, data, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from ssl_course.viz import plot_history, plot_logs

    monkeypatch.setenv(config.MODE_ENV, "record")
    recorded = fit(build_method("supervised", "tiny", data.num_classes), data,
                   _settings(config.runs_dir() / "00_curve", steps=20))
    monkeypatch.setenv(config.MODE_ENV, "learn")
    own = fit(build_method("supervised", "tiny", data.num_classes), data, _settings(None, steps=10))
    figure = plot_history(own, title="mine", reference="runs/00_curve")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["your run", "reference"]
    assert list(figure.axes[0].lines[1].get_xdata()) == recorded.step
    assert "reference run:" in figure._suptitle.get_text()
    assert len(plot_history(own, reference="runs/none").axes[0].lines) == 1   # no reference: only yours
    monkeypatch.setenv(config.MODE_ENV, "present")   # the run shown is the reference: nothing beside it
    shown = plot_history(recorded, reference="00_curve")
    assert len(shown.axes[0].lines) == 1 and "reference run:" in shown._suptitle.get_text()
    assert plot_logs(own, keys=list(own.logs)[:1], reference="00_curve") is not None


def test_reference_weights_leave_out_the_parts_a_method_skips(results, data, monkeypatch):
    """BigBiGAN's discriminator is not saved; the rest loads back and the skipped part stays as it was."""
    monkeypatch.setenv(config.MODE_ENV, "record")
    recorded = build_method("bigbigan", "tiny", data.num_classes)
    out_dir = config.runs_dir() / "00_demo_bigbigan"
    fit(recorded, data, _settings(out_dir, steps=2))
    saved = torch.load(reference.reference_dir(out_dir) / reference.WEIGHTS_FILE, weights_only=True)
    assert saved and not any(name.startswith("discriminator.") for name in saved)
    assert any(name.startswith("generator.") for name in saved)

    monkeypatch.setenv(config.MODE_ENV, "present")
    shown = build_method("bigbigan", "tiny", data.num_classes)
    untouched = _trained(shown.discriminator)
    reference.load_weights(shown, out_dir.name)
    for name, value in recorded.state_dict().items():
        if not name.startswith("discriminator."):
            torch.testing.assert_close(shown.state_dict()[name], value.half().to(value.dtype))
    for name, value in shown.discriminator.state_dict().items():
        torch.testing.assert_close(value, untouched[name])

    other = build_method("supervised", "tiny", data.num_classes)   # keys that do not fit still fail
    with pytest.raises(ValueError, match="do not fit"):
        reference.load_weights(other, out_dir.name)


def test_a_comparison_is_recorded_as_one_reference_and_presented_from_it(results, monkeypatch):
    """Record mode writes results/<comparison>/ (no weights, no stray per-run folders); present mode copies it."""
    import csv

    from ssl_course.compare import TSNE_FEATURES_NAME, run_comparison
    from ssl_course.viz import plot_curves, plot_tsne_grid

    settings = dict(labels=[40], methods=["supervised", "simclr"], epochs_per_method=0.5, seeds=[0],
                    progress=False, data="synthetic", backbone="tiny", train_subset=400, test_subset=100,
                    val_size=50, batch_size=32, monitor_every=0)
    monkeypatch.setenv(config.MODE_ENV, "record")
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "0.01")
    recorded_rows = run_comparison(config.runs_dir() / "00_demo_compare", **settings)
    assert [row["status"] for row in recorded_rows] == ["ok", "ok"]
    shipped = results / "00_demo_compare"
    assert sorted(path.name for path in results.iterdir()) == ["00_demo_compare"]   # nothing beside it
    written = {path.name for path in shipped.iterdir()}
    assert {"compare.json", "results.csv", "results.md", reference.REFERENCE_FILE} <= written
    for name in ("supervised_40_s0", "simclr_40_s0"):
        run = shipped / "runs" / name
        assert {"metrics.json", "history.json", TSNE_FEATURES_NAME} <= {p.name for p in run.iterdir()}
        assert not (run / reference.WEIGHTS_FILE).exists() and not (run / "checkpoint.pt").exists()
        saved = torch.load(run / TSNE_FEATURES_NAME, weights_only=True)
        assert saved["features"].dtype == torch.float16 and len(saved["labels"]) == len(saved["features"]) <= 300
    assert "steps" in reference.describe("00_demo_compare")
    before = sorted(str(path) for path in shipped.rglob("*"))

    monkeypatch.setenv(config.MODE_ENV, "present")
    out = config.runs_dir() / "00_demo_compare"
    assert run_comparison(out, **settings) == [{key: str(value) for key, value in row.items()} for row in recorded_rows]
    with (out / "results.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == 2
    plot_curves(out)
    plot_tsne_grid(out, labels=40)
    assert sorted(str(path) for path in shipped.rglob("*")) == before   # presenting wrote nothing into results/
    with pytest.raises(ValueError, match="other settings"):
        run_comparison(out.parent / "elsewhere" / "00_demo_compare", **{**settings, "epochs_per_method": 1.0})
    with pytest.raises(FileNotFoundError, match="no reference run named"):
        run_comparison(out.parent / "00_other_compare", **settings)
