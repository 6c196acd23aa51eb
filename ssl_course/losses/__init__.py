"""Loss functions of the course, one module per family, all re-exported here::

    from ssl_course.losses import nt_xent, info_nce, supcon, paws, fixmatch_loss, exemplar_loss

Every function documents its formula (LaTeX), tensor shapes, the paper, and which official
implementation's conventions it follows.
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

from ssl_course.losses._checks import skip_value_checks, value_checks_enabled  # noqa: E402
from ssl_course.losses.exemplar import (  # noqa: E402,F401  (explicit: Exemplar and S4L-Exemplar)
    batch_hard_triplet_loss,
    exemplar_loss,
    s4l_exemplar_loss,
)

__all__ += ["skip_value_checks", "value_checks_enabled"]
