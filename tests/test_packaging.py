"""The two ways to install (pip via pyproject.toml, conda via environment.yml) must agree."""
from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return {_name(r): r.replace(" ", "") for r in requirements}


def _environment_requirements() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    return {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    pyproject, environment = _pyproject_requirements(), _environment_requirements()
    assert set(pyproject) == set(environment), (
        f"only in pyproject.toml: {sorted(set(pyproject) - set(environment))}; "
        f"only in environment.yml: {sorted(set(environment) - set(pyproject))}")
    for name, requirement in pyproject.items():
        assert environment[name] == requirement, (
            f"{name}: pyproject says {requirement}, environment.yml says {environment[name]}"
        )


def test_no_exact_torch_pins():
    for name, requirement in _pyproject_requirements().items():
        if name in ("torch", "torchvision"):
            assert "==" not in requirement, f"declare a range for {name}, not a pin: {requirement}"


def test_readme_starts_with_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make lab" in first_block and "make test" in first_block
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "conda env create -f environment.yml" in readme


def test_every_registered_method_has_a_section_in_recipes_md():
    import re
    from pathlib import Path

    from ssl_course.methods import method_names

    text = (Path(__file__).resolve().parents[1] / "docs" / "RECIPES.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)", text, flags=re.MULTILINE))
    missing = [name for name in method_names() if name not in headings]
    assert not missing, f"docs/RECIPES.md has no '## <name>' section for {missing}"
