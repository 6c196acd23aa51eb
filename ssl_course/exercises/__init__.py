"""Checkers for the notebooks' exercises, one module per family, all re-exported here::

    from ssl_course.exercises import check_nt_xent
    check_nt_xent(my_nt_xent)   # prints a verdict, returns True when correct

A checker runs your function and the library's on several random inputs and prints either
"correct on N inputs" or the first input where they differ, with a hint about the usual mistake.
"""
from __future__ import annotations

import importlib as _importlib
import pkgutil as _pkgutil

__all__: list[str] = []
for _info in sorted(_pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _info.name.startswith("_"):
        continue
    _module = _importlib.import_module(f"{__name__}.{_info.name}")
    for _name in getattr(_module, "__all__", []):
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
