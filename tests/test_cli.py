"""The command line trains, evaluates and writes metrics; bad names fail with the valid choices."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ssl_course.cli import main


@pytest.mark.slow
def test_cli_supervised_on_synthetic_beats_chance(tmp_path, capsys):
    out = tmp_path / "sup"
    code = main(["train", "--method", "supervised", "--data", "synthetic", "--labels", "500", "--epochs", "8",
                 "--backbone", "tiny", "--batch-size", "64", "--train-subset", "2000", "--test-subset", "500",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("method", "labels", "seed", "device", "wall_time_seconds", "test_accuracy", "knn_accuracy"):
        assert key in metrics
    assert metrics["method"] == "supervised" and metrics["labels"] == 500
    assert metrics["test_accuracy"] > 0.5, metrics  # chance is 0.1
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
                 *([] if "--epochs" in args else ["--steps", "1"])])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_needs_a_budget(tmp_path, capsys):
    assert main(["train", "--method", "supervised", "--out", str(tmp_path)]) == 2
    assert "give a budget" in capsys.readouterr().err


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
