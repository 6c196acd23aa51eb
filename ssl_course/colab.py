"""Running a course notebook in Google Colab.

A notebook opened from its "Open in Colab" badge starts on a bare Colab machine: no ``ssl_course``,
no CIFAR-10, and a read-only idea of where "the repository" is. Its set-up cell therefore starts
with::

    import sys

    if "google.colab" in sys.modules:  # in Colab: install the course, fetch CIFAR-10 (once, a few minutes)
        import subprocess
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "ssl_course @ git+https://github.com/OWNER/NAME"], check=True)
        from ssl_course.colab import colab_setup
        colab_setup()

and then runs exactly as anywhere else. The package is installed with ``--no-deps`` so that Colab
keeps its own builds of torch, torchvision and the rest (reinstalling torch would take minutes and
could break its CUDA set-up, and upgrading ipywidgets would stop Colab from drawing the sliders);
:func:`colab_setup` installs only a library that is missing. The install line is generated from
``pyproject.toml``'s ``[project.urls] Repository`` by ``tools/course_links.py``, like the badges.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from ssl_course import config

#: The module Colab's kernel always imports: its presence is how a notebook knows it runs there.
COLAB_MODULE = "google.colab"
#: Where the data and the runs go on a Colab machine (its working folder, kept for the session).
COLAB_DATA = Path("/content/data")
COLAB_RUNS = Path("/content/runs")
#: Import name -> pip name of every library the notebooks import besides ssl_course.
RUNTIME_LIBRARIES = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "matplotlib": "matplotlib",
                     "sklearn": "scikit-learn", "tqdm": "tqdm", "ipywidgets": "ipywidgets"}


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return COLAB_MODULE in sys.modules


def missing_libraries() -> list[str]:
    """The pip names of the runtime libraries this kernel cannot import."""
    return [pip_name for module, pip_name in RUNTIME_LIBRARIES.items() if importlib.util.find_spec(module) is None]


def fetch_cifar10(root: str | Path) -> Path:
    """Download CIFAR-10 into ``root`` with torchvision's official downloader (it checks the archive's
    md5 and extracts ``cifar-10-batches-py/``), unless it is already there. Returns ``root``."""
    from torchvision.datasets import CIFAR10

    from ssl_course.data import cifar10_available

    root = Path(root)
    if not cifar10_available(root):
        print(f"downloading CIFAR-10 (170 MB) into {root} ...", flush=True)
        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(root=str(root), train=True, download=True)
        CIFAR10(root=str(root), train=False, download=True)
    return root


def colab_setup(data_root: str | Path = COLAB_DATA, runs_root: str | Path = COLAB_RUNS,
                download: bool = True) -> bool:
    """Make a Colab kernel ready for the course; a no-op (returning ``False``) anywhere else.

    1. install any missing runtime library (Colab ships them all today; this keeps working if not);
    2. point ``$SSL_COURSE_DATA`` and ``$SSL_COURSE_RUNS`` at ``data_root`` and ``runs_root`` unless
       they are already set (the package lives in site-packages here, so "the repository's data/
       folder" means nothing);
    3. fetch CIFAR-10 there (``download=False`` skips it: the notebooks then use synthetic data).

    The notebooks' sliders are core ipywidgets, which Colab draws without its custom widget manager.
    """
    if not in_colab():
        return False
    missing = missing_libraries()
    if missing:
        print(f"installing {', '.join(missing)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    os.environ.setdefault(config.DATA_ENV, str(data_root))
    os.environ.setdefault(config.RUNS_ENV, str(runs_root))
    if download:
        fetch_cifar10(config.data_root())
    print(f"Colab ready: data in {config.data_root()}, runs in {config.runs_dir()}")
    return True

