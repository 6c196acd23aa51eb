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
from record_demo import write_demo_source  # noqa: E402

from ssl_course import reference  # noqa: E402
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
    recorded = [line.split()[0] for line in lines if line.startswith("record:")]
    assert recorded == [f"record:{stem}" for stem, _ in gpu_day.RECORD_NOTEBOOKS]
    assert lines.index(next(line for line in lines if line.startswith("record:"))) == 2   # right after throughput
    assert all((ROOT / "notebooks" / "_src" / f"{stem}.py").is_file() for stem, _ in gpu_day.RECORD_NOTEBOOKS)
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


@pytest.mark.slow
def test_record_step_records_a_notebook_and_its_archive_restores_the_references(tmp_path):
    """``record:<notebook>`` runs the notebook in record mode into OUT/results; the archive, split into parts,
    carries the reference runs (weights included) back, and the documented command unpacks them into results/."""
    source = write_demo_source(tmp_path / "notebooks")
    out, archive = tmp_path / "out", tmp_path / "back" / "results.tar.gz"
    log = _run("--smoke", "--out", str(out), "--archive", str(archive), "--only", "record", "--record", str(source),
               "--archive-part-mib", "0.1")
    step = json.loads((out / "steps" / "record_97_demo.json").read_text())
    assert step["status"] == "ok" and step["result"]["complete"] and step["result"]["backbones"] == ["tiny"]
    run = step["result"]["runs"]["97_supervised_synthetic_40_tiny"]
    assert run["steps"] == 3 and run["weights"] and run["device"].startswith("CPU (")
    info = json.loads((out / "results" / "97_supervised_synthetic_40_tiny" / reference.REFERENCE_FILE).read_text())
    assert info["backbone"] == "tiny" and info["device_type"] == "cpu" and not info["capped"]
    assert "| 97_supervised_synthetic_40_tiny |" in (out / "report.md").read_text()
    parts = sorted(path.name for path in archive.parent.iterdir())
    assert len(parts) > 1 and parts == [f"results.tar.gz.{index:02d}" for index in range(len(parts))], parts

    checkout = tmp_path / "checkout"   # the README's command, from the repository's root
    (checkout / "results").mkdir(parents=True)
    subprocess.run(f"cat {archive}* | tar -xzf - results", shell=True, cwd=checkout, check=True)
    unpacked = sorted(path.relative_to(checkout).as_posix() for path in (checkout / "results").rglob("*")
                      if path.is_file())
    assert {"results/recorded_97_tiny.json", "results/97_supervised_synthetic_40_tiny/weights.pt",
            "results/97_supervised_synthetic_40_tiny/reference.json"} <= set(unpacked), unpacked
    assert not (checkout / "steps").exists()   # only results/ comes out

    again = _run("--smoke", "--out", str(tmp_path / "fresh"), "--resume-from", str(archive), "--only", "record",
                 "--record", str(source))
    assert "record:97_demo: done in an earlier run, skipped" in again
    assert (tmp_path / "fresh" / "results" / "97_supervised_synthetic_40_tiny" / "weights.pt").is_file()
    assert "recorded_97_tiny.json" in log


def test_notebook_budgets_match_the_plan():
    sources = sorted((ROOT / "notebooks" / "_src").glob("*.py"))
    budgets = {path.name: re.findall(r"^BUDGET_EPOCHS = (\S+)", path.read_text(), re.MULTILINE) for path in sources}
    with_budget = {name: values for name, values in budgets.items() if values}
    assert len(with_budget) >= 7, budgets
    for name, values in with_budget.items():
        assert [float(v) for v in values] == [gpu_day.BUDGET_EPOCHS] * len(values), name
    # every notebook that trains is recorded by the plan, but 09 (the tiny backbone on every device)
    recorded = {stem for stem, _ in gpu_day.RECORD_NOTEBOOKS}
    assert {name.removesuffix(".py") for name in with_budget} - recorded == {"09_enaet"}
