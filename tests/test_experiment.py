"""run_methods: the notebooks' "several methods, same settings" helper."""
from __future__ import annotations

import json

from ssl_course.experiment import run_methods

SETTINGS = dict(data="synthetic", labels=100, backbone="tiny", steps=3, train_subset=500, test_subset=200,
                progress=False, knn_bank=200)


def test_run_methods_trains_each_method_into_its_folder_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSL_COURSE_RUNS", str(tmp_path))
    results, folders = run_methods({"supervised": {}, "simclr": {"temperature": 0.2}}, "99",
                                   batch_sizes={"simclr": 16}, batch_size=32, **SETTINGS)
    assert set(results) == set(folders) == {"supervised", "simclr"}
    assert folders["simclr"] == tmp_path / "99_simclr_synthetic_100_tiny"
    saved = json.loads((folders["simclr"] / "metrics.json").read_text())
    assert saved["hparams"]["temperature"] == 0.2 and saved["experiment"]["batch_size"] == 16
    # the optimiser actually used: SimCLR's default at a peak lr scaled to the batch of 16
    from ssl_course.methods import get_method_class
    simclr = get_method_class("simclr")
    assert saved["optimizer"]["name"] == simclr.default_optimizer
    assert saved["optimizer"]["lr"] == simclr.default_lr * 16 / 256
    assert saved["optimizer"]["weight_decay"] >= 0
    assert json.loads((folders["supervised"] / "metrics.json").read_text())["experiment"]["batch_size"] == 32
    printed = capsys.readouterr().out
    assert "supervised: validation accuracy" in printed and "simclr: validation accuracy" in printed
    assert "test accuracy" in printed and "kNN (labelled bank)" in printed
    # a second call finds the finished runs: nothing is trained again
    again, _ = run_methods(["supervised"], "99", batch_size=32, **SETTINGS)
    assert again["supervised"]["steps"] == results["supervised"]["steps"] == 3
    # (a retrained run would log new timings; a resumed finished one keeps its recorded history)
    assert again["supervised"]["wall_time_seconds"] == results["supervised"]["wall_time_seconds"]


def test_metrics_report_validation_beside_test_and_the_two_knn_banks(tmp_path):
    from ssl_course.experiment import Experiment, run_experiment

    experiment = Experiment(method="supervised", data="synthetic", labels=100, backbone="tiny", steps=2,
                            train_subset=500, test_subset=200, progress=False, knn_bank="all", val_size=100)
    metrics = run_experiment(experiment, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == metrics
    for key in ("val_accuracy", "test_accuracy", "val_knn_accuracy", "knn_accuracy", "val_knn_all_labels_accuracy",
                "knn_all_labels_accuracy", "val_linear_probe_accuracy", "linear_probe_accuracy",
                "val_classifier_accuracy", "classifier_accuracy"):
        assert 0.0 <= saved[key] <= 1.0, key
    assert saved["val_size"] == 100 and saved["train_size"] == 400 and saved["test_size"] == 200
    assert saved["knn_bank"] == "all" and saved["knn_bank_size"] == 400 and saved["eval_seconds"] >= 0

    no_val = Experiment(method="supervised", data="synthetic", labels=100, backbone="tiny", steps=2,
                        train_subset=500, test_subset=200, progress=False, val_size=0)
    plain = run_experiment(no_val, tmp_path / "no_val")
    assert plain["val_size"] == 0 and plain["train_size"] == 500
    assert "test_accuracy" in plain and "knn_accuracy" in plain and plain["knn_bank_size"] is None
    assert not [key for key in plain if key.startswith("val_") and key != "val_size"]
    assert "knn_all_labels_accuracy" not in plain
