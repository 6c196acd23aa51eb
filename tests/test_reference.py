"""Reference runs and the learn / present / record modes (ssl_course.reference)."""
from __future__ import annotations

import dataclasses
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

#: What the shipped results/ may weigh in all: every clone carries it (no single file over ~2 MB).
#: The GPU-day command does not read it: `benchmarks/gpu_day.py pack` says when to move it aside so
#: that the device call's working tree (64 MiB in all) has room for the ~55 MB data pack.
RESULTS_BUDGET_BYTES = 25_000_000


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


def test_present_mode_gives_history_and_metrics_of_a_run_recorded_without_weights(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "record")
    out_dir = config.runs_dir() / "00_no_weights"
    settings = dataclasses.replace(_settings(out_dir), reference_weights=False)
    recorded = build_method("supervised", "tiny", data.num_classes)
    history = fit(recorded, data, settings)
    recorded_metrics = evaluate_method(recorded, data, probe=False)
    assert not (results / "00_no_weights" / reference.WEIGHTS_FILE).exists()

    monkeypatch.setenv(config.MODE_ENV, "present")
    shown = build_method("supervised", "tiny", data.num_classes)
    restored = fit(shown, data, settings)
    assert restored.step == history.step and restored.loss == history.loss
    assert evaluate_method(shown, data, probe=False) == pytest.approx(recorded_metrics)
    with pytest.raises(FileNotFoundError, match="recorded without weights"):
        load_trained(build_method("supervised", "tiny", data.num_classes), results / "00_no_weights")


def test_present_mode_names_a_missing_reference(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "present")
    method = build_method("supervised", "tiny", data.num_classes)
    with pytest.raises(FileNotFoundError, match="no reference run named '10_nowhere'.*unset SSL_COURSE_MODE"):
        fit(method, data, _settings(Path("runs") / "10_nowhere"))


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


def _shipped_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that a clone carries: what git tracks or would add (the GPU references' weights,
    which .gitignore keeps out, are not); every file outside a git checkout."""
    import subprocess

    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                                cwd=folder, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return [path for path in folder.rglob("*") if path.is_file()]
    return [folder / name.decode() for name in listed if name and (folder / name.decode()).is_file()]


def test_shipped_reference_runs_load_and_stay_small():
    folder = config.REPO_ROOT / "results"
    if not folder.is_dir():
        pytest.skip("no results/ folder in this checkout")
    shipped = _shipped_files(folder)
    total = sum(path.stat().st_size for path in shipped)
    assert total <= RESULTS_BUDGET_BYTES, f"results/ weighs {total / 1e6:.1f} MB (budget {RESULTS_BUDGET_BYTES:,} B)"
    largest = max(shipped, key=lambda path: path.stat().st_size)
    assert largest.stat().st_size <= 2_200_000, f"{largest} is {largest.stat().st_size:,} B: keep each file under ~2 MB"
    runs = [path for path in folder.iterdir() if path.is_dir()]
    assert runs, "results/ holds no reference run"
    for run in runs:
        assert reference.shared_name(run.name) == run.name, (
            f"{run.name} is never read: notebooks take this run from {reference.shared_name(run.name)}; delete it")
        loaded = reference.load_reference(run.name)
        assert loaded is not None, f"{run} has no {reference.REFERENCE_FILE}"
        if (run / "compare.json").is_file():   # a whole comparison (ssl_course.compare): each run has its history
            assert all((one / "history.json").is_file() for one in (run / "runs").iterdir()), run
        else:
            assert loaded["history"] is not None, run
        assert loaded["info"]["steps"] > 0, run
        assert reference.describe(run.name).startswith("reference run:")
    for marker in folder.glob("recorded_*.json"):   # a whole-notebook recording names runs that are here
        runs = json.loads(marker.read_text())["runs"]
        assert runs and all((folder / name / reference.REFERENCE_FILE).is_file() for name in runs), marker


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


def test_plot_runs_and_reference_results_follow_the_mode(results, data, monkeypatch, capsys):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from ssl_course.viz import plot_runs, print_reference_results

    shared = dict(data="synthetic", labels=40, backbone="tiny", steps=6, batch_size=32, progress=False,
                  train_subset=400, test_subset=100, val_size=50, monitor_every=0)
    monkeypatch.setenv(config.MODE_ENV, "record")
    recorded, _ = run_methods({"supervised": {}}, "00r", **shared)
    monkeypatch.setenv(config.MODE_ENV, "learn")
    own, folders = run_methods({"supervised": {}}, "00r", **dict(shared, steps=3))
    plt.close("all")
    histories = plot_runs(folders, logs_of="supervised", keys=["train_acc"], title="logs")
    assert histories["supervised"]["step"][-1] == 3
    assert len(plt.get_fignums()) == 2 and plt.figure(2)._suptitle.get_text().startswith("logs\nreference run:")
    curves = plt.figure(1).axes[0]
    assert curves.get_legend_handles_labels()[1] == ["your run", "reference"]   # the reference beside yours
    assert list(curves.lines[1].get_xdata())[-1] == recorded["supervised"]["steps"]
    lines = print_reference_results(folders)
    caption = reference.describe("00r_supervised_synthetic_40_tiny")
    accuracy = recorded["supervised"]["test_accuracy"]
    assert lines == [f"supervised: test accuracy of the course's {caption}: {accuracy:.3f}"]
    assert lines[0] in capsys.readouterr().out
    with pytest.raises(KeyError, match="logs_of='paws'"):
        plot_runs(folders, logs_of="paws")

    monkeypatch.setenv(config.MODE_ENV, "present")
    _, shown = run_methods({"supervised": {}}, "00r", **shared)
    plt.close("all")
    plot_runs(shown)
    assert len(plt.figure(1).axes[0].lines) == 1   # the run shown IS the reference: nothing beside it
    assert "the numbers shown are the course's reference run:" in print_reference_results(shown)[0]
    plt.close("all")


@pytest.mark.parametrize("name, prefix", [("paws", "memory."), ("featmatch", "buffer_")])
def test_reference_weights_leave_out_what_only_training_reads(results, name, prefix):
    trained = build_method(name, "tiny", 10)
    with torch.no_grad():
        for value in trained.state_dict().values():
            value.copy_(torch.ones_like(value) if value.dtype != torch.bool else torch.zeros_like(value))
    path = reference.save_weights(trained, "00_small_weights")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    left_out = [key for key in trained.state_dict() if key.startswith(prefix)]
    assert left_out and not any(key.startswith(prefix) for key in saved)
    assert path.stat().st_size < 600_000   # a tiny backbone's weights, not a replay memory's images
    shown = build_method(name, "tiny", 10)
    fresh = {key: value.clone() for key, value in shown.state_dict().items()}
    reference.load_weights(shown, "00_small_weights")
    for key, value in shown.state_dict().items():   # learned state restored, training-only state as built
        expected = fresh[key] if key.startswith(prefix) else trained.state_dict()[key]
        assert torch.equal(value, expected.to(value.dtype)), key


def test_notebook_setup_chooses_the_same_names_in_present_mode_as_on_a_cpu(tmp_path, monkeypatch):
    from ssl_course.notebook import notebook_setup

    monkeypatch.setenv(config.DATA_ENV, str(tmp_path / "no_cifar"))   # synthetic data
    monkeypatch.setenv(config.SMOKE_ENV, "1")
    monkeypatch.setenv(config.MODE_ENV, "learn")
    smoke = notebook_setup()
    assert smoke.smoke and smoke.num_labels == 100 and smoke.backbone == "tiny" and smoke.data_name == "synthetic"
    assert smoke.data.train_images.shape[0] <= smoke.subset["train_subset"]
    monkeypatch.setenv(config.MODE_ENV, "present")   # smoke is off, the device is the CPU
    shown = notebook_setup()
    assert not shown.smoke and shown.device == torch.device("cpu") and shown.backbone == "tiny"
    assert shown.num_labels == 250 and shown.data.num_labels == 250


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


def test_record_mode_reuses_a_run_recorded_at_the_same_budget_and_shares_the_baseline(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "record")
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "5")
    shared = "supervised_cifar10_250_tiny"
    first = fit(build_method("supervised", "tiny", data.num_classes), data,
                _settings(config.runs_dir() / f"08_{shared}", steps=6))
    folder = results / (reference.SHARED_PREFIX + shared)
    info = json.loads((folder / reference.REFERENCE_FILE).read_text())
    assert info["steps"] == 6 and not info["capped"] and info["name"] == reference.SHARED_PREFIX + shared
    stamp = (folder / reference.WEIGHTS_FILE).stat().st_mtime_ns

    def training_forbidden(*args, **kwargs):
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr("ssl_course.train._start_or_resume", training_forbidden)
    # another notebook that trains the same baseline gets the recording, not a second training
    again = fit(build_method("supervised", "tiny", data.num_classes), data,
                _settings(config.runs_dir() / f"11_{shared}", steps=6))
    assert again.loss == first.loss and (folder / reference.WEIGHTS_FILE).stat().st_mtime_ns == stamp
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "12")   # finished uncapped: a larger cap changes nothing
    assert reference.reusable_recording(f"10_{shared}", {"epochs": None, "max_steps": 6})
    assert not reference.reusable_recording(f"10_{shared}", {"epochs": None, "max_steps": 7})   # another budget
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "1")     # a smaller cap might have cut it: record again
    assert not reference.reusable_recording(f"10_{shared}", {"epochs": None, "max_steps": 6})
    monkeypatch.setenv(reference.RECORD_REUSE_ENV, "0")
    monkeypatch.setenv(reference.RECORD_MINUTES_ENV, "5")
    assert not reference.reusable_recording(f"10_{shared}", {"epochs": None, "max_steps": 6})
    monkeypatch.setenv(config.MODE_ENV, "learn")              # a learner always trains
    assert not reference.reusable_recording(f"10_{shared}", {"epochs": None, "max_steps": 6})
