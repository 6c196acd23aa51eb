"""GPU references: record mode on another device, the whole-notebook marker, and present mode's choice of
backbone. No GPU here: a recording with the ``small`` backbone made on the CPU stands in for one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from record_demo import DEMO_NOTEBOOK, write_demo_source

from ssl_course import config, reference
from ssl_course.data import make_bundle
from ssl_course.methods import build_method
from ssl_course.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent
CPU, GPU = torch.device("cpu"), torch.device("cuda")   # a device object needs no GPU to exist


@pytest.fixture()
def results(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv(reference.RESULTS_ENV, str(folder))
    monkeypatch.setenv(config.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv(reference.RECORD_DEVICE_ENV, raising=False)
    return folder


@pytest.fixture(scope="module")
def data():
    return make_bundle("synthetic", num_labels=40, seed=0, train_subset=400, test_subset=100, val_size=50)


def _record(method, data, run: str, weights: bool = True):
    settings = TrainConfig(max_steps=3, batch_size=32, seed=0, progress=False, monitor_every=0,
                           out_dir=config.runs_dir() / run, reference_weights=weights)
    return fit(method, data, settings)


def test_record_mode_uses_the_cpu_unless_told_otherwise(results, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "record")
    assert config.pick_device() == CPU and reference.forced_device() == CPU
    monkeypatch.setenv(reference.RECORD_DEVICE_ENV, "cpu")
    assert config.pick_device() == CPU
    monkeypatch.setenv(reference.RECORD_DEVICE_ENV, "tpu9")
    with pytest.raises(ValueError, match="SSL_COURSE_RECORD_DEVICE='tpu9'.*unset it to record on the CPU"):
        config.pick_device()
    if not torch.cuda.is_available():   # a GPU recording asked for where there is none fails, never records CPU runs
        monkeypatch.setenv(reference.RECORD_DEVICE_ENV, "cuda")
        with pytest.raises(ValueError, match="SSL_COURSE_RECORD_DEVICE='cuda'.*is False"):
            reference.forced_device()
    monkeypatch.setenv(config.MODE_ENV, "present")   # presenting is on the CPU whatever record mode would use
    assert config.pick_device() == CPU and reference.forced_device() == CPU
    monkeypatch.setenv(config.MODE_ENV, "learn")
    assert reference.forced_device() is None


def test_notebook_backbone_outside_present_mode_follows_the_device(results, monkeypatch):
    for mode in ("learn", "record"):
        monkeypatch.setenv(config.MODE_ENV, mode)
        assert reference.notebook_backbone("04", False, CPU) == "tiny"
        assert reference.notebook_backbone("04", False, GPU) == "small"
        assert reference.notebook_backbone("04", True, GPU) == "tiny"   # smoke mode
        assert reference.notebook_backbone("04", False, "cuda:1") == "small"
    monkeypatch.setenv(config.MODE_ENV, "present")
    assert reference.notebook_backbone("04", False, CPU) == "tiny"   # no GPU recording here
    with pytest.raises(ValueError, match="two-digit number as a string, e.g. '04'"):
        reference.notebook_backbone("4", False, CPU)


def test_a_gpu_recording_made_on_the_cpu_is_presented_with_the_small_backbone(results, data, monkeypatch, tmp_path):
    log = tmp_path / "runs.log"
    monkeypatch.setenv(config.MODE_ENV, "record")
    monkeypatch.setenv(reference.RECORD_LOG_ENV, str(log))
    recorded = build_method("supervised", "small", data.num_classes)   # the baseline notebooks 00, 08, 10 and 11 share
    history = _record(recorded, data, "08_supervised_cifar10_250_small")
    _record(build_method("rotation", "small", data.num_classes), data, "08_rotation_cifar10_250_small", weights=False)
    shared = "shared_supervised_cifar10_250_small"
    info = json.loads((results / shared / reference.REFERENCE_FILE).read_text())
    assert info["backbone"] == "small" and info["device_type"] == "cpu" and info["device"].startswith("CPU (")
    runs = reference.logged_runs(log)
    assert runs == [shared, "08_rotation_cifar10_250_small"]
    (marker,) = reference.write_recording_marker("08", runs)
    assert marker == results / "recorded_08_small.json"
    listed = json.loads(marker.read_text())
    assert listed["backbone"] == "small" and listed["devices"] == [info["device"]]
    assert {name: entry["weights"] for name, entry in listed["runs"].items()} == {
        shared: True, "08_rotation_cifar10_250_small": False}
    weights = {name: value.detach().clone() for name, value in recorded.state_dict().items()}

    monkeypatch.setenv(config.MODE_ENV, "present")
    assert reference.notebook_backbone("08", False, CPU) == "small"
    assert reference.notebook_backbone("11", False, CPU) == "tiny"   # not recorded whole: the CPU references
    shown = build_method("supervised", reference.notebook_backbone("08", False, CPU), data.num_classes)
    restored = fit(shown, data, TrainConfig(max_steps=3, batch_size=32, progress=False,
                                            out_dir=config.runs_dir() / "08_supervised_cifar10_250_small"))
    assert restored.step == history.step and restored.loss == history.loss
    for name, value in shown.state_dict().items():   # the GPU recording's weights, to half precision
        torch.testing.assert_close(value.float(), weights[name].float(), rtol=1e-3, atol=1e-3)

    saved = results / shared / reference.WEIGHTS_FILE   # weights kept out of git: back to the tiny references
    saved.rename(saved.with_suffix(".aside"))
    assert reference.notebook_backbone("08", False, CPU) == "tiny"
    saved.with_suffix(".aside").rename(saved)
    assert reference.notebook_backbone("08", False, CPU) == "small"
    aside = results / "08_rotation_cifar10_250_small"   # a run of the recording missing: the same
    aside.rename(tmp_path / "aside")
    assert reference.notebook_backbone("08", False, CPU) == "tiny"
    (tmp_path / "aside").rename(aside)
    marker.write_text("{not json")   # a broken marker promises nothing
    assert reference.notebook_backbone("08", False, CPU) == "tiny"


def test_record_mode_does_not_reuse_a_run_recorded_on_another_device(results, data, monkeypatch):
    monkeypatch.setenv(config.MODE_ENV, "record")
    _record(build_method("supervised", "tiny", data.num_classes), data, "04_supervised_cifar10_250_tiny")
    budget = {"epochs": None, "max_steps": 3}
    assert reference.reusable_recording("04_supervised_cifar10_250_tiny", budget)
    path = results / "04_supervised_cifar10_250_tiny" / reference.REFERENCE_FILE
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "device_type": "cuda"}))   # as if a GPU had recorded it
    assert not reference.reusable_recording("04_supervised_cifar10_250_tiny", budget)
    path.write_text(json.dumps({key: value for key, value in info.items() if key != "device_type"}))
    assert reference.reusable_recording("04_supervised_cifar10_250_tiny", budget)   # older references: the CPU


@pytest.mark.slow
def test_record_reference_script_runner_records_a_notebook_whole_and_present_mode_shows_it(tmp_path):
    """The notebook runs as a plain script (no Jupyter: a bare GPU machine), writes its marker, and
    then presents with the backbone it was recorded with."""
    source = write_demo_source(tmp_path / "notebooks")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", SSL_COURSE_RESULTS=str(tmp_path / "results"),
               SSL_COURSE_RUNS=str(tmp_path / "runs"), DEMO_RECORD_BACKBONE="small")
    env.pop(config.MODE_ENV, None)

    def tool(*args: str) -> str:
        done = subprocess.run([sys.executable, "tools/record_reference.py", "--runner", "script", *args, str(source)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    recorded = tool("--device", "cpu", "--minutes", "1")
    assert "97_demo.py: recorded in" in recorded and "recorded_97_small.json" in recorded
    marker = json.loads((tmp_path / "results" / f"recorded_{DEMO_NOTEBOOK}_small.json").read_text())
    assert list(marker["runs"]) == ["97_supervised_synthetic_40_small"]
    run = marker["runs"]["97_supervised_synthetic_40_small"]
    assert run["weights"] and run["steps"] == 3 and not run["capped"] and marker["devices"][0].startswith("CPU (")
    shown = tool("--present")
    assert "shown: backbone small, 3 steps" in shown   # present mode chose the GPU recording's backbone

    (tmp_path / "results" / "recorded_97_small.json").unlink()   # without the marker: the CPU's tiny references
    done = subprocess.run([sys.executable, "tools/record_reference.py", "--runner", "script", "--present",
                           str(source)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "no reference run named '97_supervised_synthetic_40_tiny'" in done.stderr


def test_notebook_setup_presents_the_backbone_of_the_notebooks_references(results, monkeypatch, tmp_path):
    from ssl_course import notebook

    monkeypatch.setattr("ssl_course.data.make_bundle", lambda *args, **kwargs: "the data")   # only the choice matters
    monkeypatch.setenv(config.MODE_ENV, "present")
    assert notebook.notebook_setup(notebook="05").backbone == "tiny"
    run = results / "05_supcon_cifar10_250_small"
    run.mkdir(parents=True)
    (run / reference.REFERENCE_FILE).write_text(json.dumps({"steps": 1}))
    reference.recording_marker("05", "small").write_text(json.dumps({"runs": {run.name: {"weights": False}}}))
    assert notebook.notebook_setup(notebook="05").backbone == "small"
    assert notebook.notebook_setup().backbone == "tiny"   # a notebook that does not say which it is: the CPU's


def test_a_notebook_source_runs_where_ipython_is_missing(monkeypatch, capsys):
    """A bare GPU machine has no IPython: the script runner's stand-in prints what a notebook displays."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    from run_notebook_source import _display_fallback

    monkeypatch.setitem(sys.modules, "IPython", None)   # None: `import IPython` raises ImportError
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    _display_fallback()
    from IPython.display import Markdown, display

    display(Markdown("| method | accuracy |"))
    assert capsys.readouterr().out == "| method | accuracy |\n"


def test_record_mode_cell_timeout_fits_a_comparison_of_every_method():
    """Notebook 12 trains all 21 methods in one cell: at the default 1.5-minute cap that is ~45 minutes,
    more than the present-mode timeout, so record mode must allow a cell that long."""
    sys.path.insert(0, str(ROOT / "tools"))
    import record_reference

    from ssl_course.methods import method_names

    comparison_seconds = len(method_names()) * 2 * 1.5 * 60   # each training plus its evaluation
    assert record_reference.cell_timeout("record", 1.5) >= comparison_seconds
    assert record_reference.cell_timeout("record", 12) >= len(method_names()) * 2 * 12 * 60
    assert record_reference.cell_timeout("present", 12) == record_reference.CELL_TIMEOUT_S
