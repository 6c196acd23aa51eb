"""The comparison: same budget for all, a crash is recorded not fatal, a rerun resumes."""
from __future__ import annotations

import csv
import json

import pytest

from ssl_course.cli import main
from ssl_course.compare import DEFAULT_EPOCHS_PER_METHOD, FORMAT_VERSION, markdown_table, run_comparison
from ssl_course.methods import METHODS
from ssl_course.methods.base import Method
from ssl_course.viz import plot_curves, plot_tsne_grid


class _Crashing(Method):
    name = "crashing_for_tests"

    def training_step(self, batch, step):
        raise RuntimeError("this method always crashes")


@pytest.fixture
def crashing_method():
    METHODS[_Crashing.name] = _Crashing
    yield _Crashing.name
    METHODS.pop(_Crashing.name)


SMALL = dict(data="synthetic", labels=[50], epochs_per_method=1, backbone="tiny", train_subset=600,
             test_subset=200, progress=False)


@pytest.mark.slow
def test_comparison_records_crashes_writes_reports_and_resumes(tmp_path, crashing_method):
    out = tmp_path / "compare"
    rows = run_comparison(out, methods=["supervised", crashing_method], **SMALL)
    by_method = {row["method"]: row for row in rows}
    assert by_method["supervised"]["status"] == "ok"
    assert 0.0 <= by_method["supervised"]["test_accuracy"] <= 1.0
    assert by_method[crashing_method]["status"] == "failed"
    assert "always crashes" in by_method[crashing_method]["error"]

    with (out / "results.csv").open() as stream:
        saved = list(csv.DictReader(stream))
    assert {row["method"] for row in saved} == {"supervised", crashing_method}
    ok = next(row for row in saved if row["method"] == "supervised")
    for key in ("val_accuracy", "test_accuracy", "val_knn_accuracy", "knn_accuracy"):   # validation beside test
        assert 0.0 <= float(ok[key]) <= 1.0, key
    assert ok["knn_all_labels_accuracy"] == ""                                         # not asked for
    report = (out / "results.md").read_text()
    assert "supervised" in report and "val acc @50" in report and "test acc @50" in report
    assert (out / "runs" / "supervised_50_s0" / "tsne_features.pt").is_file()
    plot_curves(out)
    plot_tsne_grid(out)
    assert (out / "curves.png").is_file() and (out / "tsne.png").is_file()

    metrics = out / "runs" / "supervised_50_s0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    rerun = run_comparison(out, methods=["supervised", crashing_method], **SMALL)
    assert metrics.stat().st_mtime_ns == before, "a finished method was trained again"
    assert [row["status"] for row in rerun] == ["ok", "failed"]


def test_incompatible_results_folder_is_refused(tmp_path):
    (tmp_path / "compare.json").write_text(json.dumps({"format_version": 0}))
    with pytest.raises(ValueError, match="incompatible version"):
        run_comparison(tmp_path, methods=["supervised"], **SMALL)


def test_results_folder_with_another_budget_is_refused(tmp_path):
    settings = {**SMALL, "epochs_per_method": 5}
    (tmp_path / "compare.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "data": "synthetic",
                                                       "backbone": "tiny", "minutes_per_method": None,
                                                       "epochs_per_method": 5, "train_subset": 600,
                                                       "test_subset": 200}))
    with pytest.raises(ValueError, match="other settings"):
        run_comparison(tmp_path, methods=["supervised"], **SMALL)
    del settings


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": ["nope"]}, "unknown method 'nope'"),
    ({"epochs_per_method": 0}, "must be > 0"),
    ({"labels": []}, "at least one label count"),
    ({"steps": 3}, r"unknown setting\(s\) \['steps'\]"),
])
def test_bad_comparison_arguments(tmp_path, kwargs, message):
    arguments = {**SMALL, "methods": ["supervised"], **kwargs}
    with pytest.raises(ValueError, match=message):
        run_comparison(tmp_path, **arguments)


def test_without_a_budget_the_comparison_uses_the_default_epochs(tmp_path, crashing_method):
    settings = {key: value for key, value in SMALL.items() if key != "epochs_per_method"}
    run_comparison(tmp_path, methods=[crashing_method], **settings)   # crashes at once: nothing trains
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["epochs_per_method"] == DEFAULT_EPOCHS_PER_METHOD and saved["minutes_per_method"] is None


def test_cli_compare_rejects_bad_budget(tmp_path, capsys):
    assert main(["compare", "--minutes-per-method", "-1", "--out", str(tmp_path), "--methods", "supervised"]) == 2
    assert "must be > 0" in capsys.readouterr().err


def test_markdown_table_reports_mean_and_std_over_seeds():
    rows = [{"method": "m", "labels": 250, "seed": s, "status": "ok", "test_accuracy": acc, "knn_accuracy": ""}
            for s, acc in enumerate([0.5, 0.7])]
    rows.append({"method": "m", "labels": 250, "seed": 2, "status": "failed", "test_accuracy": "", "knn_accuracy": ""})
    table = markdown_table(rows)
    assert "60.0 ± 14.1" in table and "2 (1 failed)" in table
    assert table.splitlines()[2].count("—") == 3          # no validation accuracy, no kNN at all
