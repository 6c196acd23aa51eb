"""The benchmark scripts still run (tiny settings): a benchmark that rots is found here, not on a GPU day.

They print measurements; what is checked is that they finish, print their tables and write their
files, never any speed (speed is measured in benchmarks, not asserted in tests).
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: int = 300) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_throughput_prints_its_tables():
    out = _run("benchmarks/throughput.py", "--images", "64", "--batch-size", "32", "--threads", "1",
               "--workers", "0", "--backbones", "tiny", "--train-batch-size", "8")
    for expected in ("weak", "contrastive", "strong", "PIL DataLoader", "tiny"):
        assert expected in out


def test_scaling_writes_table_csv_and_plot(tmp_path):
    out = _run("benchmarks/scaling.py", "--device", "cpu", "--backbone", "tiny", "--sweeps", "batch",
               "--values", "16", "32", "--steps", "1", "--threads", "1", "--synthetic", "--out", str(tmp_path))
    assert "ms/step" in out
    with open(tmp_path / "scaling.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["value"]) for r in rows] == [16, 32]
    assert all(float(r["seconds_per_step"]) > 0 for r in rows)
    assert (tmp_path / "scaling.png").stat().st_size > 10_000


def test_peer_speed_prints_the_ratio():
    pytest.importorskip("lightly")
    out = _run("benchmarks/peer_speed.py", "--device", "cpu", "--backbone", "tiny", "--batch-size", "16",
               "--steps", "1", "--workers", "0", "--threads", "1")
    assert "| ratio |" in out and "ssl_course (batched on device)" in out


def test_label_efficiency_writes_every_accuracy_and_the_figure(tmp_path):
    import json

    # --smoke uses the synthetic data set whether or not CIFAR-10 is there
    _run("benchmarks/label_efficiency.py", "--smoke", "--threads", "1", "--out", str(tmp_path))
    report = json.loads((tmp_path / "label_efficiency.json").read_text())
    expected_keys = {f"{n}/{s}" for n in report["labels_per_class"] for s in range(report["seeds"])}
    for curve in ("simclr_probe", "random_probe", "scratch"):
        assert set(report[curve]) == expected_keys
        assert all(0.0 <= value <= 1.0 for value in report[curve].values())
    assert (tmp_path / "label_efficiency_cpu.png").stat().st_size > 0


def test_recheck_defaults_holds_the_validation_split_out_of_training():
    """The re-check script scores the library's validation split: held out of training, not the test set."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from recheck_defaults import validation_bundle
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    data = validation_bundle(50, 600, val_per_class=8, dataset="synthetic")
    assert len(data.test_labels) == 80 and torch_bincount(data.test_labels) == [8] * 10
    assert data.test_images.data_ptr() == data.val_images.data_ptr()   # the validation images, not the test set
    train_rows = {bytes(image.numpy()) for image in data.train_images}
    assert not any(bytes(image.numpy()) in train_rows for image in data.test_images)


def torch_bincount(labels) -> list[int]:
    import torch

    return torch.bincount(labels, minlength=10).tolist()


def test_relative_position_grid_prints_the_neighbour_only_accuracy():
    out = _run("benchmarks/relative_position_grid.py", "--smoke", "--steps", "2", "--seeds", "0",
               "--grid-shifts", "0", "16")
    rows = [line for line in out.splitlines() if line.startswith("| 0 |") or line.startswith("| 16 |")]
    assert len(rows) == 2 and all(0.0 <= float(row.split("|")[5]) <= 1.0 for row in rows)
