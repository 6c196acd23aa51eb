"""benchmarks/gpu_day.py: the plan fits its budget, a smoke run writes what the notebooks read, a rerun
skips finished steps, and the notebooks' budgets agree with the plan's. Speed itself is never asserted."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_day  # noqa: E402

from ssl_course.methods import method_names  # noqa: E402
from ssl_course.results import load_run  # noqa: E402


def _run(*args: str, timeout: int = 600) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "benchmarks/gpu_day.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_dry_run_plans_at_most_540_seconds_and_every_method():
    out = _run("--dry-run")
    total = re.search(r"^total (\d+) s$", out, re.MULTILINE)
    assert total is not None and int(total.group(1)) <= 540
    lines = out.splitlines()[:-1]
    assert all(re.search(r"\s\d+ s\s", line) for line in lines), out
    for name in method_names():   # the plan follows the registry
        assert any(line.startswith(f"train:{name}@") for line in lines), name
    assert int(total.group(1)) == pytest.approx(sum(
        float(line.split()[1]) for line in lines if "does not fit" not in line), abs=len(lines))


@pytest.mark.slow
def test_smoke_run_writes_readable_results_and_a_rerun_skips_them(tmp_path):
    out, archive = tmp_path / "out", tmp_path / "back" / "results.tar.gz"
    _run("--smoke", "--out", str(out), "--archive", str(archive), "--only", "throughput", "augment_share",
         "train:supervised", "train:simclr")
    throughput = json.loads((out / "steps" / "throughput.json").read_text())["result"]["methods"]
    assert set(throughput) == set(method_names())
    assert all(row["images_per_s"] > 0 for row in throughput.values())
    for run in ("supervised_250", "supervised_4000", "simclr_250"):
        result = load_run(out / "runs" / run)
        assert 0.0 <= result["metrics"]["test_accuracy"] <= 1.0
        assert result["history"]["loss"], run
        features, labels = result["embedding"]["features"], result["embedding"]["labels"]
        assert features.ndim == 2 and len(features) == len(labels) > 0
    report = (out / "report.md").read_text()
    assert "## throughput" in report and "| supervised |" in report
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"report.md", "steps/throughput.json", "runs/simclr_250/embedding.npz"} <= names
    assert not any(name.endswith(".pt") for name in names)   # checkpoints stay behind

    before = (out / "steps" / "throughput.json").stat().st_mtime_ns
    again = _run("--smoke", "--out", str(out), "--only", "throughput", "train:simclr")
    assert "throughput: done in an earlier run, skipped" in again
    assert "train:simclr@250: done in an earlier run, skipped" in again
    assert (out / "steps" / "throughput.json").stat().st_mtime_ns == before

    restored = tmp_path / "restored"   # a fresh machine: the archive brings the finished steps back
    again = _run("--smoke", "--out", str(restored), "--resume-from", str(archive), "--only", "augment_share")
    assert "augment_share: done in an earlier run, skipped" in again


def test_notebook_budgets_match_the_plan():
    sources = sorted((ROOT / "notebooks" / "_src").glob("*.py"))
    budgets = {path.name: re.findall(r"^BUDGET_EPOCHS = (\S+)", path.read_text(), re.MULTILINE) for path in sources}
    with_budget = {name: values for name, values in budgets.items() if values}
    assert len(with_budget) >= 7, budgets
    for name, values in with_budget.items():
        assert [float(v) for v in values] == [gpu_day.BUDGET_EPOCHS] * len(values), name
