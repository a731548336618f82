"""Key-management schemes, each registered by name (see `base.py` for the hooks)."""

from . import ondemand  # noqa: F401  (registers "ondemand")
from .base import Scheme, create, info, names, register  # noqa: F401
