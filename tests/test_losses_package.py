"""The packages ``ssl_course.losses`` and ``ssl_course.exercises`` list their names explicitly:
these tests fail when a public function added to one of their modules is not re-exported."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ssl_course.exercises
import ssl_course.losses


def _public_functions(package) -> dict[str, str]:
    """``{name: module}`` of every public function defined in the package's public modules."""
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, value in vars(module).items():
            if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__:
                found[name] = module.__name__
    return found


@pytest.mark.parametrize("package", [ssl_course.losses, ssl_course.exercises], ids=lambda p: p.__name__)
def test_every_public_function_is_re_exported(package):
    functions = _public_functions(package)
    assert functions, "no public function found: the scan itself is broken"
    missing = {name: module for name, module in functions.items() if name not in package.__all__}
    assert not missing, f"add these to {package.__name__}/__init__.py (import and __all__): {missing}"
    for name, module in functions.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("package", [ssl_course.losses, ssl_course.exercises], ids=lambda p: p.__name__)
def test_all_lists_only_existing_names_once(package):
    assert len(package.__all__) == len(set(package.__all__))
    for name in package.__all__:
        assert hasattr(package, name), name
