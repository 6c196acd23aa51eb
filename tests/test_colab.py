"""Colab: badges and install lines come from pyproject.toml's one URL; the set-up works in a fake Colab.

No network: the pip call and torchvision's download are replaced by recorders. A module named
``google.colab`` in ``sys.modules`` is all Colab detection looks at, so a fake one stands in for it.
"""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from ssl_course import colab, config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course_links  # noqa: E402

URL = course_links.repository_url()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_badges_and_colab_cells_are_generated_from_pyproject():
    stale = course_links.planned_changes()
    assert not stale, f"out of date: {[str(p.relative_to(ROOT)) for p in stale]}: run `make badges`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_its_badge_under_the_title_and_the_colab_setup_first(path):
    cells = json.loads(path.read_text())["cells"]
    title_lines = "".join(cells[0]["source"]).splitlines()
    assert title_lines[0].startswith("# ") and title_lines[2] == course_links.badge(path.stem, URL)
    assert f"/blob/main/notebooks/{path.stem}.ipynb" in title_lines[2]
    first_code = next(cell for cell in cells if cell["cell_type"] == "code")
    assert "".join(first_code["source"]).startswith(course_links.colab_block(URL))


def test_readme_course_map_has_a_badge_for_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"| [{path.stem}](notebooks/{path.stem}.ipynb) {course_links.badge(path.stem, URL)} |" in readme


def test_moving_the_repository_changes_every_link(tmp_path):
    """One edit to pyproject.toml, and the generator rewrites every badge and install line."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text().replace(
        URL, "https://github.com/someone/fork"))
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text())  # still the old links
    sources = tmp_path / "notebooks" / "_src"
    sources.mkdir(parents=True)
    for path in (ROOT / "notebooks" / "_src").glob("*.py"):
        (sources / path.name).write_text(path.read_text())
    changes = course_links.planned_changes(tmp_path)
    assert set(changes) == {tmp_path / "README.md", *sources.glob("*.py")}
    for text in changes.values():
        assert URL not in text and "someone/fork" in text


def test_generator_inserts_once_and_is_idempotent():
    source = "# %% [markdown]\n# # 99 · A title\n#\n# **What you will learn**\n\n# %%\nimport os\n"
    once = course_links.with_links(source, "99_x", URL)
    assert once == course_links.with_links(once, "99_x", URL)
    assert once.count("Open In Colab") == 1 and once.count("colab_setup()") == 1
    assert once.splitlines()[3] == f"# {course_links.badge('99_x', URL)}"
    assert once.endswith(course_links.colab_block(URL) + "import os\n")


def test_repository_url_must_be_a_github_repository(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.urls]\nRepository = "nowhere"\n')
    with pytest.raises(ValueError, match="Repository must be https://github.com/OWNER/NAME"):
        course_links.repository_url(tmp_path / "pyproject.toml")


# ------------------------------------------------------------------ the set-up itself, in a fake Colab

@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    """A kernel that looks like Colab, with the environment variables unset and the network cut."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    for name in (config.DATA_ENV, config.RUNS_ENV):
        monkeypatch.setenv(name, "")  # recorded, so that the values colab_setup sets are undone afterwards
        monkeypatch.delenv(name)
    calls = {"pip": [], "cifar10": []}

    class FakeCIFAR10:  # torchvision.datasets.CIFAR10's signature; records instead of downloading
        def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
            calls["cifar10"].append({"root": root, "train": train, "download": download})

    def fake_run(command, check=False, **kwargs):
        calls["pip"].append(list(command))
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr("torchvision.datasets.CIFAR10", FakeCIFAR10)
    monkeypatch.setattr("subprocess.run", fake_run)
    return calls


def test_colab_setup_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    before = dict(os.environ)
    assert colab.colab_setup() is False
    assert dict(os.environ) == before


def test_colab_setup_points_data_and_runs_to_content_and_downloads_cifar10(fake_colab, tmp_path):
    assert colab.colab_setup(data_root=tmp_path / "data", runs_root=tmp_path / "runs") is True
    assert config.data_root() == tmp_path / "data" and config.runs_dir() == tmp_path / "runs"
    assert fake_colab["cifar10"] == [{"root": str(tmp_path / "data"), "train": True, "download": True},
                                     {"root": str(tmp_path / "data"), "train": False, "download": True}]
    assert fake_colab["pip"] == []  # the test machine has every runtime library


def test_colab_setup_keeps_a_data_folder_the_user_chose_and_skips_a_present_download(fake_colab, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv(config.DATA_ENV, str(tmp_path / "mine"))
    monkeypatch.setattr("ssl_course.data.cifar10_available", lambda root=None: True)
    colab.colab_setup(data_root=tmp_path / "data", runs_root=tmp_path / "runs")
    assert config.data_root() == tmp_path / "mine" and fake_colab["cifar10"] == []


def test_colab_setup_installs_only_missing_libraries(fake_colab, monkeypatch, tmp_path):
    monkeypatch.setattr(colab, "missing_libraries", lambda: ["ipywidgets"])
    colab.colab_setup(data_root=tmp_path / "data", runs_root=tmp_path / "runs", download=False)
    assert fake_colab["pip"] == [[sys.executable, "-m", "pip", "install", "--quiet", "ipywidgets"]]
    assert fake_colab["cifar10"] == []


@pytest.mark.parametrize("path", NOTEBOOKS[:1] + NOTEBOOKS[-1:], ids=lambda p: p.stem)
def test_the_notebook_cell_installs_from_the_repository_then_sets_up(path, fake_colab, monkeypatch, tmp_path):
    """The Colab part of the notebook's first code cell, run as Colab would run it."""
    monkeypatch.setattr(colab.colab_setup, "__defaults__", (tmp_path / "data", tmp_path / "runs", True))
    cells = json.loads(path.read_text())["cells"]
    first_code = "".join(next(cell for cell in cells if cell["cell_type"] == "code")["source"])
    colab_part = first_code[:first_code.index("colab_setup()\n") + len("colab_setup()\n")]
    exec(compile(colab_part, str(path), "exec"), {})
    assert fake_colab["pip"] == [[sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                  f"ssl_course @ git+{URL}"]]
    assert [call["train"] for call in fake_colab["cifar10"]] == [True, False]
    assert config.data_root() == tmp_path / "data"
