"""A two-cell stand-in for a course notebook, for the tests of recording whole notebooks.

``write_demo_source(folder)`` writes ``folder/_src/97_demo.py`` (a jupytext percent source, as the
course's notebooks have): one training cell of a supervised network on synthetic data whose run is
named after its backbone, as the notebooks' are. In record mode ``$DEMO_RECORD_BACKBONE`` stands in
for a GPU's choice of backbone (``small``), so that a GPU recording can be made on a CPU; otherwise it
chooses like a course notebook (``ssl_course.reference.notebook_backbone``).
"""
from __future__ import annotations

from pathlib import Path

DEMO_NOTEBOOK = "97"
DEMO_SOURCE = '''# %% [markdown]
# A stand-in for a course notebook: one training cell with a reference run.

# %%
import os

from ssl_course import config, reference
from ssl_course.data import make_bundle
from ssl_course.methods import build_method
from ssl_course.train import TrainConfig, fit

SMOKE, DEVICE = config.smoke(), config.pick_device()
BACKBONE = os.environ.get("DEMO_RECORD_BACKBONE", "") if config.mode() == "record" else ""
BACKBONE = BACKBONE or reference.notebook_backbone("97", SMOKE, DEVICE)
data = make_bundle("synthetic", num_labels=40, seed=0, train_subset=400, test_subset=100, val_size=50, device=DEVICE)
method = build_method("supervised", BACKBONE, data.num_classes)
history = fit(method, data, TrainConfig(max_steps=3, batch_size=32, seed=0, progress=False, monitor_every=0,
                                        device=str(DEVICE),
                                        out_dir=config.runs_dir() / f"97_supervised_synthetic_40_{BACKBONE}"))

# %%
from IPython.display import display

display(f"shown: backbone {BACKBONE}, {history.step[-1]} steps")
'''


def write_demo_source(folder: Path) -> Path:
    """Write the demo notebook's source under ``folder/_src/`` and return its path."""
    source = folder / "_src" / f"{DEMO_NOTEBOOK}_demo.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(DEMO_SOURCE)
    return source
