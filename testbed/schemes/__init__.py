"""Key-management schemes, each registered by name (see `base.py` for the hooks).

Every module of this package is imported here, and each registers its schemes with `register(...)`: adding a
scheme is adding a file.
"""

import importlib
import pkgutil

from .base import Scheme, create, info, names, register  # noqa: F401

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")
