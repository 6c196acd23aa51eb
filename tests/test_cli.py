"""The command line trains, evaluates and writes metrics; bad names fail with the valid choices."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import pytest

from ssl_course.cli import build_parser, experiment_settings, main
from ssl_course.compare import shared_settings
from ssl_course.experiment import Experiment


@pytest.mark.slow
def test_cli_supervised_on_synthetic_beats_chance(tmp_path, capsys):
    out = tmp_path / "sup"
    code = main(["train", "--method", "supervised", "--data", "synthetic", "--labels", "500", "--epochs", "8",
                 "--backbone", "tiny", "--batch-size", "64", "--train-subset", "2000", "--test-subset", "500",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("method", "labels", "seed", "device", "wall_time_seconds", "test_accuracy", "knn_accuracy",
                "val_accuracy", "val_knn_accuracy", "eval_seconds"):
        assert key in metrics
    assert metrics["method"] == "supervised" and metrics["labels"] == 500
    assert metrics["val_size"] == 200 and metrics["train_size"] == 1800 and metrics["knn_bank"] == "labeled"
    assert metrics["test_accuracy"] > 0.5 and metrics["val_accuracy"] > 0.5, metrics  # chance is 0.1
    assert (out / "checkpoint.pt").is_file()

    from ssl_course.evaluate import classifier_accuracy
    from ssl_course.experiment import load_trained

    method, data = load_trained(out, device="cpu")
    reloaded = classifier_accuracy(method.predict, data.test_images, data.test_labels)
    assert reloaded == pytest.approx(metrics["test_accuracy"], abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--method", "nope"], "unknown method 'nope': choose one of"),
    (["--method", "supervised", "--data", "mnist"], "unknown data set 'mnist'"),
    (["--method", "supervised", "--backbone", "vgg"], "unknown backbone 'vgg'"),
    (["--method", "supervised", "--epochs", "0"], "must be > 0"),
    (["--method", "supervised", "--hparam", "nonsense=1"], "has no hyper-parameter(s) ['nonsense']"),
])
def test_cli_bad_names_and_budgets(tmp_path, capsys, args, message):
    code = main(["train", *args, "--out", str(tmp_path / "x"), "--no-progress",
                 *([] if "--data" in args else ["--data", "synthetic"]),
                 *([] if "--epochs" in args else ["--steps", "1"])])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_needs_a_budget(tmp_path, capsys):
    assert main(["train", "--method", "supervised", "--out", str(tmp_path)]) == 2
    assert "give a budget" in capsys.readouterr().err


def test_train_options_set_every_experiment_field():
    args = build_parser().parse_args(["train", "--method", "supervised", "--steps", "3", "--out", "x", "--no-progress",
                                      "--hparam", "label_smoothing=0.1", "--knn-bank", "50", "--compile", "off",
                                      "--val-size", "0", "--amp", "off"])
    settings = experiment_settings(args)
    # reference_weights only matters when notebooks record the course's reference runs
    # (SSL_COURSE_MODE=record): deliberately not a command-line option
    not_on_the_command_line = {"reference_weights"}
    assert set(settings) == {field.name for field in fields(Experiment)} - not_on_the_command_line
    experiment = Experiment(**settings)
    assert experiment.hparams == {"label_smoothing": 0.1} and experiment.knn_bank == 50 and experiment.val_size == 0
    assert experiment.compile is False and experiment.progress is False and experiment.steps == 3
    assert experiment.amp is False


@pytest.mark.parametrize("value, expected", [("auto", True), ("off", False), ("bf16", "bf16"), ("fp16", "fp16")])
def test_amp_option(value, expected):
    for command in (["train", "--method", "supervised", "--steps", "1"], ["compare", "--epochs-per-method", "1"]):
        args = build_parser().parse_args([*command, "--out", "x", "--amp", value])
        assert experiment_settings(args)["amp"] == expected
        Experiment(**{**experiment_settings(args), "method": "supervised", "labels": 250, "steps": 1}).validate()
    defaults = build_parser().parse_args(["train", "--method", "supervised", "--steps", "1", "--out", "x"])
    assert experiment_settings(defaults)["amp"] is True    # autocast on CUDA only, as TrainConfig's default


def test_bad_amp_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--method", "supervised", "--steps", "1", "--amp", "fp32"])
    assert "invalid choice: 'fp32'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="amp must be one of"):
        Experiment(method="supervised", steps=1, amp="fp32").validate()


def test_cli_trains_under_forced_bfloat16_and_records_it(tmp_path):
    out = tmp_path / "bf16"
    code = main(["train", "--method", "supervised", "--data", "synthetic", "--labels", "100", "--steps", "2",
                 "--backbone", "tiny", "--batch-size", "16", "--train-subset", "200", "--test-subset", "50",
                 "--val-size", "0", "--device", "cpu", "--amp", "bf16", "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiment"]["amp"] == "bf16" and metrics["autocast"] == "bfloat16"
    assert json.loads((out / "history.json").read_text())["autocast"] == "bfloat16"


@pytest.mark.parametrize("value, expected", [("labeled", "labeled"), ("all", "all"), ("2000", 2000)])
def test_knn_bank_option(value, expected):
    args = build_parser().parse_args(["train", "--method", "supervised", "--steps", "1", "--out", "x",
                                      "--knn-bank", value])
    assert experiment_settings(args)["knn_bank"] == expected
    defaults = build_parser().parse_args(["train", "--method", "supervised", "--steps", "1", "--out", "x"])
    assert experiment_settings(defaults)["knn_bank"] == "labeled" and experiment_settings(defaults)["val_size"] is None


@pytest.mark.parametrize("value", ["everything", "0", "-5"])
def test_bad_knn_bank_is_refused_with_the_choices(value, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--method", "supervised", "--steps", "1", "--out", "x",
                                   "--knn-bank", value])
    assert "'labeled'" in capsys.readouterr().err


def test_cli_rejects_a_negative_val_size(tmp_path, capsys):
    assert main(["train", "--method", "supervised", "--steps", "1", "--val-size", "-10",
                 "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--val-size must be an int >= 0" in capsys.readouterr().err


def test_compare_options_are_settings_every_run_shares():
    args = build_parser().parse_args(["compare", "--epochs-per-method", "1", "--out", "x", "--batch-size", "32",
                                      "--labels", "40", "250"])
    settings = experiment_settings(args)
    assert set(settings) - {"labels", "progress"} <= set(shared_settings())  # the two are run_comparison's own
    assert settings["labels"] == [40, 250] and settings["batch_size"] == 32 and settings["compile"] is None
    assert settings["val_size"] is None and settings["knn_bank"] == "labeled"


def test_module_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "ssl_course", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--method" in result.stdout


@pytest.mark.cifar
@pytest.mark.slow
def test_cli_trains_on_the_real_cifar10_subset(tmp_path):
    out = tmp_path / "cifar"
    code = main(["train", "--method", "supervised", "--data", "cifar10", "--labels", "250", "--steps", "40",
                 "--backbone", "tiny", "--batch-size", "64", "--train-subset", "2000", "--test-subset", "1000",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == "cifar10" and metrics["test_size"] == 1000
    assert 0.18 < metrics["test_accuracy"] < 1.0, metrics  # measured 0.27-0.29 over seeds 0-2; chance is 0.1


# What a newcomer types: defaults, --help, and expected failures as one message with a non-zero exit.

TINY = ["--data", "synthetic", "--backbone", "tiny", "--labels", "100", "--train-subset", "200",
        "--test-subset", "100", "--batch-size", "32", "--no-progress"]


def _never_trains(*args, **kwargs):
    raise AssertionError("training started although the command should have been refused first")


def test_top_level_help_lists_the_commands_with_examples():
    result = subprocess.run([sys.executable, "-m", "ssl_course", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "compare"):
        assert command in result.stdout
    assert "python -m ssl_course train --method fixmatch --labels 250 --minutes 5" in result.stdout
    assert "python -m ssl_course compare" in result.stdout


def test_data_defaults_to_cifar10_and_out_is_optional():
    args = build_parser().parse_args(["train", "--method", "fixmatch", "--labels", "250", "--minutes", "5"])
    assert args.data == "cifar10" and args.out is None


def test_default_out_is_a_readable_folder_under_runs(monkeypatch):
    import datetime

    from ssl_course.cli import default_out

    monkeypatch.delenv("SSL_COURSE_RUNS", raising=False)
    out = default_out("fixmatch", 250, now=datetime.datetime(2025, 1, 31, 14, 25, 1))
    assert out.as_posix() == "runs/fixmatch-250labels-20250131-142501"
    monkeypatch.setenv("SSL_COURSE_RUNS", "/somewhere/runs")
    assert default_out("simclr", 40).parent.as_posix() == "/somewhere/runs"


def test_train_without_out_writes_under_runs_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSL_COURSE_RUNS", raising=False)
    assert main(["train", "--method", "supervised", "--steps", "2", *TINY]) == 0
    printed = capsys.readouterr().out.splitlines()
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("supervised-100labels-")
    assert (runs[0] / "metrics.json").is_file()
    folder = f"runs/{runs[0].name}"
    assert folder in printed[0], printed  # at the start ...
    assert folder in printed[-1], printed  # ... and at the end


def test_resume_needs_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ssl_course.experiment.run_experiment", _never_trains)
    assert main(["train", "--method", "supervised", "--steps", "2", "--resume", *TINY]) == 2
    assert "--resume continues the run in --out" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("where", ["the file itself", "a folder inside the file"])
def test_out_naming_a_file_fails_before_training(tmp_path, monkeypatch, capsys, where):
    existing = tmp_path / "notes.txt"
    existing.write_text("not a folder")
    out = existing if where == "the file itself" else existing / "run"
    monkeypatch.setattr("ssl_course.experiment.run_experiment", _never_trains)
    assert main(["train", "--method", "supervised", "--steps", "2", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{existing} is a file, not a folder" in err and "Traceback" not in err
    assert existing.read_text() == "not a folder"


def test_missing_cifar10_offline_points_to_synthetic(tmp_path, monkeypatch, capsys):
    import ssl_course.data.cifar10 as cifar10

    def offline(root):
        raise OSError("no network")

    monkeypatch.setenv("SSL_COURSE_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(cifar10, "_download", offline)
    cifar10.clear_cache()
    code = main(["train", "--method", "fixmatch", "--labels", "250", "--minutes", "5", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 2
    assert "downloading the official archive" in captured.out
    assert "CIFAR-10 training files not found" in captured.err and "add --data synthetic" in captured.err


def test_diverging_learning_rate_is_one_message_not_a_traceback(tmp_path):
    """As a user sees it: a real process, a real divergence, stderr holds the engine's advice and no traceback."""
    result = subprocess.run([sys.executable, "-m", "ssl_course", "train", "--method", "supervised", "--steps", "5",
                             "--lr", "1e30", *TINY, "--out", str(tmp_path / "lr")], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "the loss became non-finite" in result.stderr and "Lower the learning rate" in result.stderr
